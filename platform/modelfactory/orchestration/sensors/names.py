"""The names a location's sensors go by, and the tags their run requests carry.

Names are per code location, so one of each is all a location needs; tests and the CLI
find a sensor by these.
"""

# On the runs a drift verdict requests: the receive time the judged window starts after
# ("" for the first window), so the drift report reads the very rows the sensor judged.
DRIFT_WINDOW_TAG = "modelfactory/drift_window_after"

# On the runs a sensor's verdict requests: the champion version it judged, so the drift
# report compares with that version's reference even if a retrain promoted another since.
CHAMPION_TAG = "modelfactory/champion"

CANARY_SENSOR = "modelfactory_canary"
DRIFT_SENSOR = "modelfactory_drift"
LIVE_METRIC_SENSOR = "modelfactory_live_metric"
NEW_SEGMENTS_SENSOR = "modelfactory_new_segments"
SCORE_REFRESHED_SENSOR = "modelfactory_score_refreshed"
RUN_FAILURES_SENSOR = "modelfactory_run_failures"
