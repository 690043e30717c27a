// KdadShards
