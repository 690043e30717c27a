// KdadNN
