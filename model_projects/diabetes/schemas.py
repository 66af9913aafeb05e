"""A valid patient record: physiological ranges wide enough for any adult, sex coded 1 or 2
(as in the study), and a progression score the study's scale allows."""

import pandera.pandas as pa
from pandera.typing import Series


class RawSchema(pa.DataFrameModel):
    age: Series[float] = pa.Field(ge=18, le=100)
    sex: Series[float] = pa.Field(isin=[1, 2])
    bmi: Series[float] = pa.Field(ge=10, le=70)
    bp: Series[float] = pa.Field(ge=40, le=200)
    s1: Series[float] = pa.Field(ge=50, le=500)
    s2: Series[float] = pa.Field(ge=10, le=400)
    s3: Series[float] = pa.Field(ge=5, le=150)
    s4: Series[float] = pa.Field(ge=1, le=15)
    s5: Series[float] = pa.Field(ge=2, le=8)
    s6: Series[float] = pa.Field(ge=40, le=200)
    progression: Series[float] = pa.Field(ge=0, le=400)

    class Config:
        coerce = True
        strict = True


class FeatureSchema(pa.DataFrameModel):
    age: Series[int] = pa.Field(ge=18, le=100)
    sex: Series[int] = pa.Field(isin=[1, 2])
    bmi: Series[float] = pa.Field(ge=10, le=70)
    bp: Series[float] = pa.Field(ge=40, le=200)
    tc: Series[float] = pa.Field(ge=50, le=500)
    ldl: Series[float] = pa.Field(ge=10, le=400)
    hdl: Series[float] = pa.Field(ge=5, le=150)
    tch: Series[float] = pa.Field(ge=1, le=15)
    ltg: Series[float] = pa.Field(ge=2, le=8)
    glu: Series[float] = pa.Field(ge=40, le=200)
    progression: Series[float] = pa.Field(ge=0, le=400)

    class Config:
        coerce = True
        strict = True
