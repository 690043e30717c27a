// KdadMetrics
