import Foundation

/// A reference-counted, 64-byte aligned Float32 buffer. Tensors that are reshaped views of each
/// other share one storage; every op allocates a fresh one for its result.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Uninitialised memory for `count` floats (callers fill it before anyone reads it).
    init(uninitializedCount count: Int) {
        pointer = StoragePool.shared.allocate(count: count)
        self.count = count
    }

    convenience init(repeating value: Float, count: Int) {
        self.init(uninitializedCount: count)
        pointer.initialize(repeating: value, count: count)
    }

    deinit { StoragePool.shared.release(pointer, count: count) }
}

/// Reuses large buffers. Fresh large allocations come from mmap, and first-touching each page
/// (kernel zeroing + a fault per 4 KiB) cost more than the op itself for memory-bound ops such
/// as 1×1 convolutions (measured: 16×144×64² output, 41-46 ms → 12 ms). Training and inference
/// allocate the same shapes every step, so buffers are cached by exact size up to a byte limit.
final class StoragePool: @unchecked Sendable {
    static let shared = StoragePool()
    /// Below this many floats malloc is fast and keeps its own free lists.
    static let minimumPooledCount = 16 * 1024

    private let lock = NSLock()
    private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var cachedBytes = 0
    var limitBytes = 1 << 30

    func allocate(count: Int) -> UnsafeMutablePointer<Float> {
        let capacity = Swift.max(count, 1)
        if capacity >= Self.minimumPooledCount {
            lock.lock()
            if let p = free[capacity]?.popLast() {
                cachedBytes -= capacity * MemoryLayout<Float>.stride
                lock.unlock()
                return p
            }
            lock.unlock()
        }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: capacity * MemoryLayout<Float>.stride, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: capacity)
    }

    func release(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
        let capacity = Swift.max(count, 1), bytes = capacity * MemoryLayout<Float>.stride
        if capacity >= Self.minimumPooledCount {
            lock.lock()
            if cachedBytes + bytes <= limitBytes {
                free[capacity, default: []].append(pointer)
                cachedBytes += bytes
                lock.unlock()
                return
            }
            lock.unlock()
        }
        UnsafeMutableRawPointer(pointer).deallocate()
    }

    /// Frees every cached buffer; returns the bytes released.
    func drain() -> Int {
        lock.lock()
        let buffers = free.values.flatMap { $0 }
        let bytes = cachedBytes
        free = [:]
        cachedBytes = 0
        lock.unlock()
        for p in buffers { UnsafeMutableRawPointer(p).deallocate() }
        return bytes
    }

    var cachedByteCount: Int { lock.lock(); defer { lock.unlock() }; return cachedBytes }

    func withLock<R>(_ body: (StoragePool) -> R) -> R { lock.lock(); defer { lock.unlock() }; return body(self) }
}

/// Errors from tensor construction and state files. Shape mismatches between tensors that the
/// program itself builds are programmer errors and trap with a precondition naming both shapes.
public struct TensorError: Error, CustomStringConvertible, Equatable {
    public var context: String
    public var reason: String
    public init(_ context: String, _ reason: String) { self.context = context; self.reason = reason }
    public var description: String { "\(context): \(reason)" }
}

/// A contiguous, row-major Float32 tensor (image tensors are NCHW) that records the operations
/// made from it for reverse-mode automatic differentiation.
///
/// A class because autograd needs node identity: the backward pass finds each tensor once, and a
/// parameter keeps its identity while optimisers update its values in place.
/// `@unchecked Sendable`: a tensor may be handed to another task, but must not be mutated
/// (optimiser step, `.grad` accumulation) while another thread reads it.
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    public let shape: [Int]
    public let storage: TensorStorage
    /// Leaf tensors with `requiresGrad` receive gradients in `.grad`; results of ops on such tensors
    /// carry `requiresGrad == true` and a backward node.
    public var requiresGrad: Bool
    /// Accumulated gradient (leaf tensors only), same shape as the tensor.
    public var grad: Tensor?
    /// How this tensor was made; nil for leaves and for results computed without gradient tracking.
    var node: GradNode?

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    public var isLeaf: Bool { node == nil }
    var pointer: UnsafeMutablePointer<Float> { storage.pointer }

    init(shape: [Int], storage: TensorStorage, requiresGrad: Bool = false) {
        precondition(shape.reduce(1, *) == storage.count, "shape \(shape) does not match \(storage.count) elements")
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.storage = storage
        self.requiresGrad = requiresGrad
    }

    /// A tensor holding `values` (row-major) with the given shape.
    public convenience init(shape: [Int], values: [Float], requiresGrad: Bool = false) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        let storage = TensorStorage(uninitializedCount: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { storage.pointer.initialize(from: base, count: values.count) }
        }
        self.init(shape: shape, storage: storage, requiresGrad: requiresGrad)
    }

    public convenience init(shape: [Int], repeating value: Float, requiresGrad: Bool = false) {
        self.init(shape: shape, storage: TensorStorage(repeating: value, count: shape.reduce(1, *)), requiresGrad: requiresGrad)
    }

    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(shape: shape, repeating: 0, requiresGrad: requiresGrad)
    }
    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(shape: shape, repeating: 1, requiresGrad: requiresGrad)
    }
    public static func scalar(_ value: Float) -> Tensor { Tensor(shape: [], values: [value]) }

    /// A result tensor with uninitialised contents (internal: ops fill it).
    static func uninitialized(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: TensorStorage(uninitializedCount: shape.reduce(1, *)))
    }

    /// A copy of the values, row-major.
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
    /// The single value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item needs a one-element tensor, shape is \(shape)")
        return pointer[0]
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: pointer, count: count))
    }
    /// Writes values in place. Bypasses autograd: use for initialisation, optimiser updates and
    /// loading state, never on a tensor a recorded graph still needs.
    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: pointer, count: count))
    }

    /// Overwrites the values in place (same count); bypasses autograd like `withUnsafeMutableBufferPointer`.
    public func assign(_ values: [Float]) {
        precondition(values.count == count, "assign: \(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }

    /// A new leaf with the same values, not connected to the graph.
    public func detach() -> Tensor { Tensor(shape: shape, storage: storage) }

    /// A new leaf with its own copy of the values.
    public func copy(requiresGrad: Bool = false) -> Tensor {
        let out = Tensor.uninitialized(shape)
        out.pointer.update(from: pointer, count: count)
        out.requiresGrad = requiresGrad
        return out
    }

    public func zeroGrad() { grad = nil }

    /// A graph-free tensor sharing this storage. Backward closures that need an op's own output
    /// capture this, never the output tensor (which owns the node: a reference cycle).
    func storageView() -> Tensor { Tensor(shape: shape, storage: storage) }

    /// Frees long graphs iteratively: releasing a chain of nodes recursively would overflow the stack.
    deinit {
        guard node != nil else { return }
        var pending = [node!]
        node = nil
        while var current = pending.popLast() {
            guard isKnownUniquelyReferenced(&current) else { continue }
            current.backward = { _ in [] }  // drops the closure's captures first
            var inputs = current.inputs
            current.inputs = []
            while var input = inputs.popLast() {
                if isKnownUniquelyReferenced(&input), input.node != nil {
                    pending.append(input.node!)
                    input.node = nil
                }
            }
        }
    }

    public var description: String {
        let preview = scalars.prefix(8).map { String(format: "%.5g", $0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(preview)\(count > 8 ? ", …" : "")])"
    }
}

/// Row-major strides of a contiguous shape.
func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var running = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[axis] = running
        running *= shape[axis]
    }
    return strides
}

/// Resolves a possibly negative axis against a rank.
func normalizeAxis(_ axis: Int, rank: Int) -> Int {
    let resolved = axis < 0 ? axis + rank : axis
    precondition(resolved >= 0 && resolved < rank, "axis \(axis) out of range for rank \(rank)")
    return resolved
}
