// KdadWeights
