"""Small archives in the published layouts of the downloaded datasets (jena_climate, electricity), with the faults of
the real files, for tests that download them from a local HTTP server."""

from __future__ import annotations

import math
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

JENA_ZIP, JENA_MEMBER = "jena_climate_2009_2016.csv.zip", "jena_climate_2009_2016.csv"
JENA_CSV = "jena_climate_2009_2016.lstmkit-v1.csv"
JENA_HEADER = ("Date Time,p (mbar),T (degC),Tpot (K),Tdew (degC),rh (%),VPmax (mbar),VPact (mbar),VPdef (mbar),"
               "sh (g/kg),H2OC (mmol/mol),rho (g/m**3),wv (m/s),max. wv (m/s),wd (deg)")
JENA_START = datetime(2009, 1, 12, 0, 10)  # spans 13.01 (day > 12: unambiguous) and 01.02 (February 1st, day first)
JENA_STEPS = 21 * 144                       # three weeks of 10-minute rows
JENA_DUPLICATE, JENA_GAP, JENA_SENTINEL_ROW = 100, (200, 203), 300  # rows of the regular grid

ELEC_ZIP, ELEC_MEMBER = "electricityloaddiagrams20112014.zip", "LD2011_2014.txt"


def jena_row(t: datetime, i: int) -> str:
    """One line of the published Jena layout: day-first timestamp, 14 values with two decimals."""
    temp = -5 + 4 * math.sin(2 * math.pi * i / 144) + 0.5 * math.sin(0.37 * i) + i / 2000  # not exactly periodic
    values = [990 + i % 7, temp, temp + 273.15, temp - 3, 80 + i % 11, 4 + temp / 10, 3 + temp / 20, 1 + (i % 5) / 10,
              2 + (i % 3) / 10, 3 + (i % 4) / 10, 1300 - temp, 1 + (i % 6) / 4, 2 + (i % 6) / 4, (37 * i) % 360]
    return t.strftime("%d.%m.%Y %H:%M:%S") + "," + ",".join(f"{v:.2f}" for v in values)


def jena_zip(folder: Path) -> Path:
    """A small zip in the published layout with the real file's faults: a repeated row, a gap, a -9999 reading."""
    lines = [JENA_HEADER]
    for i in range(JENA_STEPS):
        if JENA_GAP[0] <= i < JENA_GAP[1]:
            continue
        line = jena_row(JENA_START + timedelta(minutes=10 * i), i)
        if i == JENA_SENTINEL_ROW:
            cells = line.split(",")
            cells[12] = cells[13] = "-9999.00"  # wv (m/s) and max. wv (m/s)
            line = ",".join(cells)
        lines.append(line)
        if i == JENA_DUPLICATE:
            lines.append(line)
    path = folder / JENA_ZIP
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(JENA_MEMBER, "\r\n".join(lines) + "\r\n")
    return path


def electricity_zip(folder: Path, clients: int = 3, seed: int = 0) -> Path:
    """The UCI archive over its whole span (2011-01-01 00:15 to 2015-01-01 00:00, quarter hours, decimal commas) for
    a few clients with daily and weekly cycles; the last client connects in 2013 (zeros before: dropped)."""
    stamps = np.arange(np.datetime64("2011-01-01T00:15"), np.datetime64("2015-01-01T00:15"), np.timedelta64(15, "m"))
    hours = (np.arange(len(stamps)) / 4.0)
    rng = np.random.default_rng(seed)
    lines = ['""' + "".join(f';"MT_{c + 1:03d}"' for c in range(clients))]
    load = [10 * (c + 1) * (1.5 + np.sin(2 * np.pi * hours / 24) + 0.3 * np.sin(2 * np.pi * hours / 168))
            + rng.gamma(2.0, 0.5, len(stamps)) for c in range(clients)]
    load[-1][stamps < np.datetime64("2013-01-01")] = 0.0
    text = np.char.replace(np.array([np.char.mod("%.3f", v) for v in load]).T, ".", ",")
    stamp_text = np.datetime_as_string(stamps, unit="s")
    lines += [f'"{t.replace("T", " ")}";' + ";".join(row) for t, row in zip(stamp_text, text, strict=True)]
    path = folder / ELEC_ZIP
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(ELEC_MEMBER, "\n".join(lines) + "\n")
    return path
