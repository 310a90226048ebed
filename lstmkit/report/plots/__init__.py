"""Figures of the report, one module per chapter that shows them; every figure titled, with labelled axes and units.

The chapters call them as `plots.<figure>`: this package re-exports every chapter's figures.
"""

from lstmkit.report.plots.anomalies import *  # noqa: F403
from lstmkit.report.plots.data import *  # noqa: F403
from lstmkit.report.plots.deployment import *  # noqa: F403
from lstmkit.report.plots.evaluation import *  # noqa: F403
from lstmkit.report.plots.explainability import *  # noqa: F403
from lstmkit.report.plots.preprocessing import *  # noqa: F403
from lstmkit.report.plots.style import *  # noqa: F403
from lstmkit.report.plots.training import *  # noqa: F403
from lstmkit.report.plots.tuning import *  # noqa: F403
from lstmkit.report.plots.uncertainty import *  # noqa: F403
