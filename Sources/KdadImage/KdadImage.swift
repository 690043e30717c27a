// KdadImage
