// Sorting millions of pixel scores: scores become order-preserving UInt32 keys and are sorted with
// a least-significant-digit radix sort (4 byte passes, one scratch buffer). Comparison sorts are
// several times slower at the 10^7-10^8 element scale of pixel metrics.

/// Maps a non-NaN Float to a UInt32 whose unsigned order is the Float order. -0 and +0 get the
/// same key (they compare equal as Floats, so they must tie).
@inline(__always)
func orderedKey(_ value: Float) -> UInt32 {
    let bits = (value == 0 ? Float(0) : value).bitPattern
    return bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
}

/// Inverse of `orderedKey`.
@inline(__always)
func scoreOfKey(_ key: UInt32) -> Float {
    Float(bitPattern: key & 0x8000_0000 != 0 ? key & 0x7FFF_FFFF : ~key)
}

/// Stable ascending LSD radix sort of `values` by a 32-bit key. Passes whose byte is the same for
/// every element are skipped (common: scores in a narrow range share their top byte).
func radixSort<Element>(_ values: inout [Element], key: (Element) -> UInt32) {
    let count = values.count
    guard count > 1 else { return }
    var histograms = [Int](repeating: 0, count: 4 * 256)
    values.withUnsafeBufferPointer { source in
        histograms.withUnsafeMutableBufferPointer { histogram in
            for element in source {
                let k = key(element)
                histogram[Int(k & 0xFF)] += 1
                histogram[256 + Int((k >> 8) & 0xFF)] += 1
                histogram[512 + Int((k >> 16) & 0xFF)] += 1
                histogram[768 + Int(k >> 24)] += 1
            }
        }
    }
    var scratch = values
    var resultInScratch = false
    for pass in 0..<4 {
        let base = pass * 256
        // A byte shared by all elements leaves the order unchanged.
        if histograms[base..<base + 256].contains(count) { continue }
        var offsets = [Int](repeating: 0, count: 256)
        var running = 0
        for bucket in 0..<256 {
            offsets[bucket] = running
            running += histograms[base + bucket]
        }
        let shift = UInt32(pass * 8)
        func scatter(_ source: UnsafeBufferPointer<Element>, _ destination: UnsafeMutableBufferPointer<Element>) {
            offsets.withUnsafeMutableBufferPointer { offset in
                for element in source {
                    let bucket = Int((key(element) >> shift) & 0xFF)
                    destination[offset[bucket]] = element
                    offset[bucket] += 1
                }
            }
        }
        if resultInScratch {
            scratch.withUnsafeBufferPointer { source in
                values.withUnsafeMutableBufferPointer { destination in scatter(source, destination) }
            }
        } else {
            values.withUnsafeBufferPointer { source in
                scratch.withUnsafeMutableBufferPointer { destination in scatter(source, destination) }
            }
        }
        resultInScratch.toggle()
    }
    if resultInScratch { swap(&values, &scratch) }
}
