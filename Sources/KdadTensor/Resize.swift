import Foundation

/// Source sampling positions along one axis for a resize.
struct ResizeAxis {
    var index0: [Int], index1: [Int], weight1: [Float]

    /// Bilinear: align_corners true maps corners to corners; false uses half-pixel centres with
    /// the source coordinate clamped at 0 (PyTorch). `scale` is input/output unless given.
    static func linear(input: Int, output: Int, alignCorners: Bool, scale: Float? = nil) -> ResizeAxis {
        var i0 = [Int](), i1 = [Int](), w1 = [Float]()
        for o in 0..<output {
            let src: Float
            if alignCorners {
                src = output > 1 ? Float(o) * Float(input - 1) / Float(output - 1) : 0
            } else {
                let s = scale ?? Float(input) / Float(output)
                src = Swift.max((Float(o) + 0.5) * s - 0.5, 0)
            }
            let lo = Swift.min(Int(src), input - 1)
            i0.append(lo); i1.append(Swift.min(lo + 1, input - 1)); w1.append(src - Float(lo))
        }
        return ResizeAxis(index0: i0, index1: i1, weight1: w1)
    }

    /// Nearest (PyTorch 'nearest'): floor(o * input/output).
    static func nearest(input: Int, output: Int) -> ResizeAxis {
        let idx = (0..<output).map { Swift.min(Int(Float($0) * Float(input) / Float(output)), input - 1) }
        return ResizeAxis(index0: idx, index1: idx, weight1: [Float](repeating: 0, count: output))
    }
}

extension Tensor {
    /// Bilinear resize of H, W (NCHW).
    public func resizeBilinear(height: Int, width: Int, alignCorners: Bool) -> Tensor {
        precondition(rank == 4, "resizeBilinear: input \(shape)")
        return resize(rows: .linear(input: shape[2], output: height, alignCorners: alignCorners),
                      cols: .linear(input: shape[3], output: width, alignCorners: alignCorners), name: "resize_bilinear")
    }

    /// Bilinear upsampling by a scale factor (source scale 1/factor, as PyTorch with scale_factor).
    public func upsampleBilinear(scale: Int, alignCorners: Bool = false) -> Tensor {
        precondition(rank == 4, "upsampleBilinear: input \(shape)")
        let s = alignCorners ? nil : Float(1) / Float(scale)
        return resize(rows: .linear(input: shape[2], output: shape[2] * scale, alignCorners: alignCorners, scale: s),
                      cols: .linear(input: shape[3], output: shape[3] * scale, alignCorners: alignCorners, scale: s),
                      name: "upsample_bilinear")
    }

    public func resizeNearest(height: Int, width: Int) -> Tensor {
        precondition(rank == 4, "resizeNearest: input \(shape)")
        return resize(rows: .nearest(input: shape[2], output: height), cols: .nearest(input: shape[3], output: width),
                      name: "resize_nearest")
    }

    func resize(rows: ResizeAxis, cols: ResizeAxis, name: String) -> Tensor {
        let n = shape[0], c = shape[1], h = shape[2], w = shape[3]
        let ho = rows.index0.count, wo = cols.index0.count
        let out = Tensor.uninitialized([n, c, ho, wo])
        let px = pointer, po = out.pointer
        Parallel.forRange(n * c) { planes in
            for p in planes {
                let src = px + p * h * w
                for oy in 0..<ho {
                    let r0 = src + rows.index0[oy] * w, r1 = src + rows.index1[oy] * w, wy = rows.weight1[oy]
                    let d = po + p * ho * wo + oy * wo
                    for ox in 0..<wo {
                        let x0 = cols.index0[ox], x1 = cols.index1[ox], wx = cols.weight1[ox]
                        let top = r0[x0] + (r0[x1] - r0[x0]) * wx
                        let bottom = r1[x0] + (r1[x1] - r1[x0]) * wx
                        d[ox] = top + (bottom - top) * wy
                    }
                }
            }
        }
        let inputShape = shape
        return Tensor.result(out, name: name, inputs: [self]) { g in
            let gx = Tensor.zeros(inputShape)
            let pg = g.pointer, pgx = gx.pointer
            Parallel.forRange(n * c) { planes in
                for p in planes {
                    let dst = pgx + p * h * w
                    for oy in 0..<ho {
                        let y0 = rows.index0[oy], y1 = rows.index1[oy], wy = rows.weight1[oy]
                        let gr = pg + p * ho * wo + oy * wo
                        for ox in 0..<wo {
                            let x0 = cols.index0[ox], x1 = cols.index1[ox], wx = cols.weight1[ox], v = gr[ox]
                            dst[y0 * w + x0] += v * (1 - wy) * (1 - wx)
                            dst[y0 * w + x1] += v * (1 - wy) * wx
                            dst[y1 * w + x0] += v * wy * (1 - wx)
                            dst[y1 * w + x1] += v * wy * wx
                        }
                    }
                }
            }
            return [gx]
        }
    }
}
