// KdadMethods
