"""Windows, features, detectors, calibration, attribution and model bundles."""
