"""Every measurement is a non-negative float (the mean perimeter, which build_features divides
by, is positive: a mass without one was not measured); the label is 0 or 1."""

import pandera.pandas as pa

_MEASURES = (
    "radius", "texture", "perimeter", "area", "smoothness",
    "compactness", "concavity", "concave_points", "symmetry", "fractal_dimension",
)  # fmt: skip
MEASUREMENTS = [name for m in _MEASURES for name in (f"mean_{m}", f"{m}_error", f"worst_{m}")]


def _measurement_columns() -> dict[str, pa.Column]:
    def check(name: str) -> pa.Check:
        return pa.Check.gt(0) if name == "mean_perimeter" else pa.Check.ge(0)

    return {name: pa.Column(float, check(name), coerce=True) for name in MEASUREMENTS}


RawSchema = pa.DataFrameSchema(
    {**_measurement_columns(), "malignant": pa.Column(int, pa.Check.isin([0, 1]), coerce=True)},
    strict=True,
)

FeatureSchema = RawSchema.add_columns(
    {"area_to_perimeter": pa.Column(float, pa.Check.ge(0), coerce=True)}
)
