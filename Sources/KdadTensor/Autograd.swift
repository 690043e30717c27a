import Foundation

/// One recorded operation: its inputs and a function from the output gradient to the input
/// gradients (nil where an input needs none). Backward functions compute with raw kernels, so the
/// backward pass itself records nothing (no higher-order gradients).
final class GradNode {
    let name: String
    var inputs: [Tensor]
    var backward: (Tensor) -> [Tensor?]

    init(name: String, inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.backward = backward
    }
}

public enum GradMode {
    /// Task-local so that inference in one task never switches off training in another; in plain
    /// synchronous code it behaves like a thread-local flag.
    @TaskLocal static var isEnabled = true
}

extension Tensor {
    /// Whether operations currently record the graph.
    public static var isGradEnabled: Bool { GradMode.isEnabled }

    /// Runs `body` without recording operations (inference, optimiser arithmetic).
    public static func noGrad<R>(_ body: () throws -> R) rethrows -> R {
        try GradMode.$isEnabled.withValue(false) { try body() }
    }

    /// Wraps a computed result: records a backward node when gradients are on and any input needs one.
    static func result(_ output: Tensor, name: String, inputs: [Tensor],
                       backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        if GradMode.isEnabled && inputs.contains(where: { $0.requiresGrad }) {
            output.requiresGrad = true
            output.node = GradNode(name: name, inputs: inputs, backward: backward)
        }
        return output
    }

    /// Reverse-mode differentiation from this tensor. With no `gradient`, the tensor must hold one
    /// element and the seed is 1. Gradients are added to the `.grad` of every leaf with `requiresGrad`.
    public func backward(_ gradient: Tensor? = nil) {
        precondition(requiresGrad, "backward on a tensor that does not require gradients")
        let seed: Tensor
        if let gradient {
            precondition(gradient.shape == shape, "backward seed shape \(gradient.shape) != \(shape)")
            seed = gradient
        } else {
            precondition(count == 1, "backward without a seed needs a one-element tensor, shape is \(shape)")
            seed = Tensor(shape: shape, repeating: 1)
        }

        // Topological order by iterative depth-first search (graphs can be deep: no recursion).
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (tensor, expanded) = stack.popLast() {
            if expanded { order.append(tensor); continue }
            let id = ObjectIdentifier(tensor)
            if visited.contains(id) { continue }
            visited.insert(id)
            stack.append((tensor, true))
            if let node = tensor.node {
                for input in node.inputs where input.requiresGrad && !visited.contains(ObjectIdentifier(input)) {
                    stack.append((input, false))
                }
            }
        }

        var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seed]
        for tensor in order.reversed() {
            let id = ObjectIdentifier(tensor)
            guard let gradient = pending.removeValue(forKey: id) else { continue }
            guard let node = tensor.node else {
                // A leaf: accumulate into .grad (a fresh tensor, so earlier .grad values never alias).
                if let existing = tensor.grad {
                    tensor.grad = Kernels.addSameShape(existing, gradient)
                } else {
                    tensor.grad = gradient.storage === seed.storage ? gradient.copy() : gradient
                }
                continue
            }
            let inputGradients = node.backward(gradient)
            precondition(inputGradients.count == node.inputs.count, "\(node.name): backward returned \(inputGradients.count) gradients for \(node.inputs.count) inputs")
            for (input, inputGradient) in zip(node.inputs, inputGradients) {
                guard input.requiresGrad, let inputGradient else { continue }
                precondition(inputGradient.shape == input.shape,
                             "\(node.name): gradient shape \(inputGradient.shape) for input of shape \(input.shape)")
                let inputID = ObjectIdentifier(input)
                if let existing = pending[inputID] {
                    pending[inputID] = Kernels.addSameShape(existing, inputGradient)
                } else {
                    pending[inputID] = inputGradient
                }
            }
        }
    }
}
