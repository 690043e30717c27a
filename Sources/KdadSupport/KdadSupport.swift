// KdadSupport
