"""Pure measures of music and models: metrics, n-gram baselines, ABC validity."""
