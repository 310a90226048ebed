"""Figures of the report, one module per chapter that shows them; every figure titled, with labelled axes and units.

The chapters call them as `plots.<figure>`: this package re-exports every chapter's figures.
"""

from lstmkit.plots.anomalies import *  # noqa: F403
from lstmkit.plots.data import *  # noqa: F403
from lstmkit.plots.deployment import *  # noqa: F403
from lstmkit.plots.evaluation import *  # noqa: F403
from lstmkit.plots.explainability import *  # noqa: F403
from lstmkit.plots.preprocessing import *  # noqa: F403
from lstmkit.plots.style import *  # noqa: F403
from lstmkit.plots.training import *  # noqa: F403
from lstmkit.plots.tuning import *  # noqa: F403
from lstmkit.plots.uncertainty import *  # noqa: F403
