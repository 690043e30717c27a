import Foundation

// Ops built from other differentiable ops: their gradients come from autograd.

extension Tensor {
    /// x / max(‖x‖₂, eps) along `axis` (channels by default), as PyTorch `F.normalize`.
    public func l2Normalized(axis: Int = 1, eps: Float = 1e-12) -> Tensor {
        let norm = square().sum(axis: axis, keepDim: true).sqrt().clamp(min: eps)
        return self / norm
    }

    /// Cosine similarity along `axis` (channels by default): Σ a·b / (max(‖a‖,eps)·max(‖b‖,eps)).
    public static func cosineSimilarity(_ a: Tensor, _ b: Tensor, axis: Int = 1, eps: Float = 1e-8) -> Tensor {
        let na = a.square().sum(axis: axis, keepDim: true).sqrt().clamp(min: eps)
        let nb = b.square().sum(axis: axis, keepDim: true).sqrt().clamp(min: eps)
        return ((a / na) * (b / nb)).sum(axis: axis)
    }

    /// SimAM (parameter-free attention): with n = H·W − 1 and d = (x − mean_hw x)²,
    /// y = d / (4·(Σ_hw d / n + λ)) + 0.5, output x · sigmoid(y).
    public func simAM(lambda: Float = 1e-4) -> Tensor {
        precondition(rank == 4, "simAM: input \(shape)")
        let n = Float(shape[2] * shape[3] - 1)
        let d = (self - mean(axes: [2, 3], keepDim: true)).square()
        let y = d / ((d.sum(axes: [2, 3], keepDim: true) / n + lambda) * 4) + 0.5
        return self * y.sigmoid()
    }

    /// Mean squared error.
    public static func mseLoss(_ prediction: Tensor, _ target: Tensor) -> Tensor {
        (prediction - target).square().mean()
    }

    /// Huber (smooth-L1 style) loss, mean over elements: ½d² where |d| < δ, else δ(|d| − ½δ).
    public static func huberLoss(_ prediction: Tensor, _ target: Tensor, delta: Float = 1) -> Tensor {
        precondition(prediction.shape == target.shape, "huberLoss: \(prediction.shape) vs \(target.shape)")
        let diff = Kernels.zip(prediction, target, -)
        let values = Kernels.map(diff) { d in Swift.abs(d) < delta ? 0.5 * d * d : delta * (Swift.abs(d) - 0.5 * delta) }
        let perElement = result(values, name: "huber", inputs: [prediction, target]) { g in
            let gd = Kernels.zip(g, diff) { g, d in g * Swift.min(Swift.max(d, -delta), delta) }
            return [prediction.requiresGrad ? gd : nil, target.requiresGrad ? Kernels.map(gd) { -$0 } : nil]
        }
        return perElement.mean()
    }

    /// Soft Dice loss per sample, averaged: 1 − (2Σpt + s)/(Σp + Σt + s), sums over all but axis 0.
    public static func diceLoss(_ prediction: Tensor, _ target: Tensor, smooth: Float = 1) -> Tensor {
        precondition(prediction.shape == target.shape, "diceLoss: \(prediction.shape) vs \(target.shape)")
        let axes = Array(1..<prediction.rank)
        let intersection = (prediction * target).sum(axes: axes)
        let total = prediction.sum(axes: axes) + target.sum(axes: axes)
        return (1 - (intersection * 2 + smooth) / (total + smooth)).mean()
    }
}
