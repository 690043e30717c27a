import Foundation
import XCTest
@testable import KdadImage

/// Deterministic pseudo-random numbers (SplitMix64) so every fixture is reproducible from its seed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// CRC-32 (ISO-HDLC, as PNG uses), written out here so PNG fixtures do not depend on zlib or libpng.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian(_ value: UInt32) {
        append(contentsOf: [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)])
    }

    func bigEndianUInt32(at offset: Int) -> UInt32 {
        (UInt32(self[offset]) << 24) | (UInt32(self[offset + 1]) << 16) | (UInt32(self[offset + 2]) << 8) | UInt32(self[offset + 3])
    }

    func bigEndianUInt16(at offset: Int) -> Int { Int(self[offset]) << 8 | Int(self[offset + 1]) }
}

/// PNG files assembled byte by byte: zlib stream of *stored* deflate blocks (no compression), chunk
/// CRCs computed here. An encoder-independent source of PNGs for checking the decoder's values.
enum HandmadePNG {
    struct Chunk {
        var type: String
        var data: [UInt8]
    }

    static func chunkBytes(_ chunk: Chunk) -> [UInt8] {
        var out: [UInt8] = []
        out.appendBigEndian(UInt32(chunk.data.count))
        let typeAndData = Array(chunk.type.utf8) + chunk.data
        out += typeAndData
        out.appendBigEndian(CRC32.checksum(typeAndData))
        return out
    }

    static func zlibStored(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let length = Swift.min(65535, payload.count - offset)
            let final: UInt8 = offset + length == payload.count ? 1 : 0
            out.append(final)  // BFINAL, BTYPE=00 (stored), byte-aligned
            out += [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)]
            out += payload[offset..<offset + length]
            offset += length
        } while offset < payload.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in payload {
            a = (a + UInt32(byte)) % 65521
            b = (b + a) % 65521
        }
        out.appendBigEndian(b << 16 | a)
        return out
    }

    /// Packs one value per sample into PNG scanlines (filter type 0) at `bitDepth` bits per sample.
    static func scanlines(_ samples: [Int], width: Int, height: Int, samplesPerPixel: Int, bitDepth: Int) -> [UInt8] {
        var out: [UInt8] = []
        let perRow = width * samplesPerPixel
        for y in 0..<height {
            out.append(0)
            let row = samples[(y * perRow)..<((y + 1) * perRow)]
            if bitDepth == 16 {
                for v in row { out += [UInt8(v >> 8), UInt8(v & 0xFF)] }
            } else if bitDepth == 8 {
                out += row.map { UInt8($0) }
            } else {
                var byte = 0, bits = 0
                for v in row {
                    byte = (byte << bitDepth) | v
                    bits += bitDepth
                    if bits == 8 { out.append(UInt8(byte)); byte = 0; bits = 0 }
                }
                if bits > 0 { out.append(UInt8(byte << (8 - bits))) }
            }
        }
        return out
    }

    static func file(width: Int, height: Int, bitDepth: Int, colorType: Int, samples: [Int], samplesPerPixel: Int,
                     extraChunks: [Chunk] = []) -> Data {
        var ihdr: [UInt8] = []
        ihdr.appendBigEndian(UInt32(width))
        ihdr.appendBigEndian(UInt32(height))
        ihdr += [UInt8(bitDepth), UInt8(colorType), 0, 0, 0]
        var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        bytes += chunkBytes(Chunk(type: "IHDR", data: ihdr))
        for chunk in extraChunks { bytes += chunkBytes(chunk) }
        let raw = scanlines(samples, width: width, height: height, samplesPerPixel: samplesPerPixel, bitDepth: bitDepth)
        bytes += chunkBytes(Chunk(type: "IDAT", data: zlibStored(raw)))
        bytes += chunkBytes(Chunk(type: "IEND", data: []))
        return Data(bytes)
    }
}

/// Reads sizes straight from file bytes, independently of the decoders.
enum HeaderBytes {
    /// (width, height, bit depth, colour type) from a PNG's IHDR.
    static func pngIHDR(_ data: Data) -> (width: Int, height: Int, bitDepth: Int, colorType: Int)? {
        let b = [UInt8](data.prefix(33))
        guard b.count == 33, Array(b[12..<16]) == Array("IHDR".utf8) else { return nil }
        return (Int(b.bigEndianUInt32(at: 16)), Int(b.bigEndianUInt32(at: 20)), Int(b[24]), Int(b[25]))
    }

    /// Offset of the SOFn marker's segment (the byte after FF Cn) and its (width, height, components).
    static func jpegSOF(_ data: Data) -> (offset: Int, width: Int, height: Int, components: Int)? {
        let b = [UInt8](data)
        var i = 2
        while i + 3 < b.count {
            guard b[i] == 0xFF else { return nil }
            let marker = b[i + 1]
            if marker == 0xFF { i += 1; continue }  // fill byte
            if marker == 0x01 || (0xD0...0xD7).contains(marker) { i += 2; continue }
            let length = b.bigEndianUInt16(at: i + 2)
            if (0xC0...0xCF).contains(marker) && marker != 0xC4 && marker != 0xC8 && marker != 0xCC {
                guard i + 9 < b.count else { return nil }
                return (i + 2, b.bigEndianUInt16(at: i + 7), b.bigEndianUInt16(at: i + 5), Int(b[i + 9]))
            }
            if marker == 0xDA { return nil }  // scan before any frame header
            i += 2 + length
        }
        return nil
    }
}

/// Edits tags of the first directory of a little-endian classic TIFF (what libtiff writes here).
struct TIFFTagPatcher {
    var bytes: [UInt8]

    init(_ data: Data) { bytes = [UInt8](data) }

    private func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
    private func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
    private mutating func put16(_ o: Int, _ v: Int) { bytes[o] = UInt8(v & 0xFF); bytes[o + 1] = UInt8((v >> 8) & 0xFF) }
    private mutating func put32(_ o: Int, _ v: Int) { put16(o, v & 0xFFFF); put16(o + 2, (v >> 16) & 0xFFFF) }

    /// Sets a single-valued SHORT/LONG tag, switching it to LONG when the value needs it.
    /// Returns false when the tag is not present.
    @discardableResult
    mutating func set(tag: Int, to value: Int) -> Bool {
        precondition(bytes[0] == 0x49 && bytes[1] == 0x49, "little-endian TIFF expected")
        let directory = u32(4)
        let count = u16(directory)
        for entry in 0..<count {
            let o = directory + 2 + entry * 12
            guard u16(o) == tag else { continue }
            put32(o + 4, 1)
            if value > 0xFFFF || u16(o + 2) == 4 {
                put16(o + 2, 4)
                put32(o + 8, value)
            } else {
                put16(o + 2, 3)
                put32(o + 8, value)
            }
            return true
        }
        return false
    }

    var data: Data { Data(bytes) }
}

/// Asserts that `body` throws an ImageDecodeError and returns it.
func expectDecodeError(_ body: () throws -> Void, _ message: String, file: StaticString = #filePath, line: UInt = #line) -> ImageDecodeError? {
    do {
        try body()
        XCTFail("expected an ImageDecodeError: \(message)", file: file, line: line)
        return nil
    } catch let error as ImageDecodeError {
        return error
    } catch {
        XCTFail("expected an ImageDecodeError, got \(type(of: error)) \(error): \(message)", file: file, line: line)
        return nil
    }
}
