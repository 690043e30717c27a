// KdadTensor
