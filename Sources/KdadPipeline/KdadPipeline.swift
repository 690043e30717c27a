// KdadPipeline
