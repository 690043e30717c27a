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

/// Ascending sort of ordered score keys.
func radixSort(_ values: inout [UInt32]) {
    radixSortCore(&values) { $0 }
}

/// Ascending sort of 64-bit entries by their high 32 bits (stable: low words keep their order).
func radixSortByHighWord(_ values: inout [UInt64]) {
    radixSortCore(&values) { UInt32(truncatingIfNeeded: $0 >> 32) }
}

/// Stable ascending LSD radix sort of `values` by a 32-bit key. Passes whose byte is the same for
/// every element are skipped (common: scores in a narrow range share their top byte).
/// Always inlined so each caller gets a specialised copy: unspecialised generic code runs through
/// value witnesses and is about 10x slower here.
@inline(__always)
private func radixSortCore<Element>(_ values: inout [Element], key: (Element) -> UInt32) {
    let count = values.count
    guard count > 1 else { return }
    var histograms = [Int](repeating: 0, count: 4 * 256)
    values.withUnsafeBufferPointer { source in
        histograms.withUnsafeMutableBufferPointer { histogram in
            for index in 0..<count {
                let k = key(source[index])
                histogram[Int(k & 0xFF)] += 1
                histogram[256 + Int((k >> 8) & 0xFF)] += 1
                histogram[512 + Int((k >> 16) & 0xFF)] += 1
                histogram[768 + Int(k >> 24)] += 1
            }
        }
    }
    var scratch = values
    var resultInScratch = false
    var offsets = [Int](repeating: 0, count: 256)
    for pass in 0..<4 {
        let base = pass * 256
        // A byte shared by all elements leaves the order unchanged.
        if histograms[base..<base + 256].contains(count) { continue }
        var running = 0
        for bucket in 0..<256 {
            offsets[bucket] = running
            running += histograms[base + bucket]
        }
        let shift = UInt32(pass * 8)
        let fromScratch = resultInScratch
        values.withUnsafeMutableBufferPointer { valuesBuffer in
            scratch.withUnsafeMutableBufferPointer { scratchBuffer in
                offsets.withUnsafeMutableBufferPointer { offset in
                    let source = fromScratch ? scratchBuffer : valuesBuffer
                    let destination = fromScratch ? valuesBuffer : scratchBuffer
                    for index in 0..<count {
                        let element = source[index]
                        let bucket = Int((key(element) >> shift) & 0xFF)
                        destination[offset[bucket]] = element
                        offset[bucket] += 1
                    }
                }
            }
        }
        resultInScratch.toggle()
    }
    if resultInScratch { swap(&values, &scratch) }
}
