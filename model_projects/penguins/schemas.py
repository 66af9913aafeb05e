"""What a valid penguin looks like. Measurements and sex may be missing (nullable): the
endpoint then accepts `null` for them, and train.py's imputer fills them in."""

import pandera.pandas as pa
from pandera.typing import Series

SPECIES = ["Adelie", "Chinstrap", "Gentoo"]
ISLANDS = ["Biscoe", "Dream", "Torgersen"]
SEXES = ["female", "male"]


class FeatureSchema(pa.DataFrameModel):
    island: Series[str] = pa.Field(isin=ISLANDS)
    bill_length_mm: Series[float] = pa.Field(ge=10, le=100, nullable=True)
    bill_depth_mm: Series[float] = pa.Field(ge=5, le=40, nullable=True)
    flipper_length_mm: Series[float] = pa.Field(ge=100, le=300, nullable=True)
    body_mass_g: Series[float] = pa.Field(ge=1000, le=10000, nullable=True)
    sex: Series[str] = pa.Field(isin=SEXES, nullable=True)
    species: Series[str] = pa.Field(isin=SPECIES)

    class Config:
        coerce = True
        strict = True


class RawSchema(FeatureSchema):
    year: Series[int] = pa.Field(ge=2007, le=2009)

    class Config:
        coerce = True
        strict = False
