"""What valid data looks like. A row breaking these stops training before it starts."""

import pandera.pandas as pa
from pandera.typing import Series

MARKETPLACES = ["uk", "de", "us"]


class RawSchema(pa.DataFrameModel):
    date: Series[pa.DateTime]
    product_id: Series[str]
    marketplace: Series[str] = pa.Field(isin=MARKETPLACES)
    price: Series[float] = pa.Field(gt=0)
    promo: Series[int] = pa.Field(isin=[0, 1])
    temperature: Series[float] = pa.Field(ge=-40, le=50)
    units_sold: Series[float] = pa.Field(ge=0)

    class Config:
        coerce = True
        strict = False


class FeatureSchema(pa.DataFrameModel):
    date: Series[pa.DateTime]
    marketplace: Series[str] = pa.Field(isin=MARKETPLACES)
    price: Series[float] = pa.Field(gt=0)
    promo: Series[int] = pa.Field(isin=[0, 1])
    temperature: Series[float] = pa.Field(ge=-40, le=50)
    is_weekend: Series[int] = pa.Field(isin=[0, 1])
    units_sold: Series[float] = pa.Field(ge=0)

    class Config:
        coerce = True
        strict = True
