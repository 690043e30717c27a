import Foundation

/// Reads `.zip` archives in place: the central directory for the entry list, then one entry's bytes
/// on demand (stored or deflated, CRC-32 checked). No ZIP64, no encryption: such entries are
/// reported as unreadable (and so quarantined), never guessed at.
enum ZipArchive {
    typealias Entry = ZipEntry

    static func entries(of url: URL) throws -> [Entry] {
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw PipelineError.io(path: url.path, reason: "cannot open archive: \(error.localizedDescription)")
        }
        let bytes = [UInt8](data)
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        // End of central directory: last signature within the final 64 KiB + 22 bytes.
        guard bytes.count >= 22 else { throw PipelineError.io(path: url.path, reason: "not a zip archive (too short)") }
        var end = -1
        var at = bytes.count - 22
        while at >= max(0, bytes.count - 22 - 65_535) {
            if u32(at) == 0x0605_4B50 { end = at; break }
            at -= 1
        }
        guard end >= 0 else { throw PipelineError.io(path: url.path, reason: "not a zip archive (no end of central directory)") }
        let count = u16(end + 10)
        var position = u32(end + 16)
        guard u32(end + 16) != 0xFFFF_FFFF, count != 0xFFFF else {
            throw PipelineError.io(path: url.path, reason: "ZIP64 archives are not supported")
        }
        var entries: [Entry] = []
        for _ in 0..<count {
            guard position + 46 <= bytes.count, u32(position) == 0x0201_4B50 else {
                throw PipelineError.io(path: url.path, reason: "corrupt zip central directory at byte \(position)")
            }
            let nameLength = u16(position + 28), extraLength = u16(position + 30), commentLength = u16(position + 32)
            guard position + 46 + nameLength <= bytes.count else { throw PipelineError.io(path: url.path, reason: "corrupt zip entry name") }
            let name = String(decoding: bytes[(position + 46)..<(position + 46 + nameLength)], as: UTF8.self)
            let entry = Entry(name: name, localHeaderOffset: u32(position + 42), method: u16(position + 10),
                              compressedSize: u32(position + 20), uncompressedSize: u32(position + 24),
                              crc32: UInt32(u32(position + 16)), encrypted: u16(position + 8) & 1 != 0,
                              modified: Double(u16(position + 14) << 16 | u16(position + 12)))
            position += 46 + nameLength + extraLength + commentLength
            if name.hasSuffix("/") { continue }  // directory
            if name.split(separator: "/").last?.hasPrefix(".") == true { continue }
            entries.append(entry)
        }
        return entries.sorted { $0.name < $1.name }
    }

    static func read(_ url: URL, entry: Entry) throws -> Data {
        guard !entry.encrypted else { throw PipelineError.io(path: "\(url.path)!\(entry.name)", reason: "encrypted zip entries are not supported") }
        let handle: FileHandle
        do { handle = try FileHandle(forReadingFrom: url) } catch {
            throw PipelineError.io(path: url.path, reason: "cannot open archive: \(error.localizedDescription)")
        }
        defer { try? handle.close() }
        do {
            try handle.seek(toOffset: UInt64(entry.localHeaderOffset))
            let header = [UInt8](try handle.read(upToCount: 30) ?? Data())
            guard header.count == 30, header[0] == 0x50, header[1] == 0x4B, header[2] == 3, header[3] == 4 else {
                throw PipelineError.io(path: "\(url.path)!\(entry.name)", reason: "corrupt zip local header")
            }
            let skip = (Int(header[26]) | Int(header[27]) << 8) + (Int(header[28]) | Int(header[29]) << 8)
            try handle.seek(toOffset: UInt64(entry.localHeaderOffset + 30 + skip))
            let compressed = try handle.read(upToCount: entry.compressedSize) ?? Data()
            guard compressed.count == entry.compressedSize else {
                throw PipelineError.io(path: "\(url.path)!\(entry.name)", reason: "zip entry truncated")
            }
            let output: [UInt8]
            switch entry.method {
            case 0: output = [UInt8](compressed)
            case 8: output = try Inflate.decompress([UInt8](compressed), expectedSize: entry.uncompressedSize)
            default:
                throw PipelineError.io(path: "\(url.path)!\(entry.name)", reason: "zip compression method \(entry.method) is not supported (only stored and deflate)")
            }
            guard output.count == entry.uncompressedSize, CRC32.checksum(output) == entry.crc32 else {
                throw PipelineError.io(path: "\(url.path)!\(entry.name)", reason: "zip entry fails its CRC-32 check")
            }
            return Data(output)
        } catch let error as PipelineError {
            throw error
        } catch let error as Inflate.Failure {
            throw PipelineError.io(path: "\(url.path)!\(entry.name)", reason: "corrupt deflate data: \(error.reason)")
        } catch {
            throw PipelineError.io(path: url.path, reason: "cannot read archive: \(error.localizedDescription)")
        }
    }
}

/// One file of a zip archive, as its central directory describes it.
public struct ZipEntry: Sendable, Equatable {
    public let name: String
    public let localHeaderOffset: Int
    public let method: Int
    public let compressedSize: Int
    public let uncompressedSize: Int
    public let crc32: UInt32
    public let encrypted: Bool
    public let modified: Double
    var unsafe: Bool { name.hasPrefix("/") || name.split(separator: "/", omittingEmptySubsequences: false).contains("..") }
}


/// CRC-32 (IEEE 802.3, reflected, as zip and gzip use).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { table in
            bytes.withUnsafeBufferPointer { input in
                for byte in input { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
            }
        }
        return crc ^ 0xFFFF_FFFF
    }
}

/// A raw DEFLATE (RFC 1951) decoder: stored, fixed-Huffman and dynamic-Huffman blocks, decoded
/// canonically bit by bit (small and obviously correct rather than fast; zip inputs are rare).
struct Inflate {
    struct Failure: Error { let reason: String }

    private let input: [UInt8]
    private var position = 0
    private var bitBuffer = 0
    private var bitCount = 0
    private var output: [UInt8] = []

    static func decompress(_ input: [UInt8], expectedSize: Int) throws -> [UInt8] {
        var inflater = Inflate(input: input)
        inflater.output.reserveCapacity(expectedSize)
        try inflater.run()
        return inflater.output
    }

    private init(input: [UInt8]) { self.input = input }

    /// Canonical Huffman code: symbol counts per length and symbols ordered by code.
    struct Huffman {
        var counts = [Int](repeating: 0, count: 16)
        var symbols: [Int]

        init(lengths: [Int]) throws {
            symbols = [Int](repeating: 0, count: lengths.count)
            for length in lengths { counts[length] += 1 }
            counts[0] = 0
            var offsets = [Int](repeating: 0, count: 16)
            for length in 1..<16 { offsets[length] = offsets[length - 1] + counts[length - 1] }
            for (symbol, length) in lengths.enumerated() where length != 0 {
                symbols[offsets[length]] = symbol
                offsets[length] += 1
            }
        }
    }

    private mutating func bits(_ count: Int) throws -> Int {
        while bitCount < count {
            guard position < input.count else { throw Failure(reason: "unexpected end of data") }
            bitBuffer |= Int(input[position]) << bitCount
            position += 1
            bitCount += 8
        }
        let value = bitBuffer & ((1 << count) - 1)
        bitBuffer >>= count
        bitCount -= count
        return value
    }

    private mutating func decode(_ huffman: Huffman) throws -> Int {
        var code = 0, first = 0, index = 0
        for length in 1..<16 {
            code |= try bits(1)
            let count = huffman.counts[length]
            if code - count < first { return huffman.symbols[index + (code - first)] }
            index += count
            first = (first + count) << 1
            code <<= 1
        }
        throw Failure(reason: "invalid Huffman code")
    }

    private static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    private static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    private static let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
                                       4097, 6145, 8193, 12289, 16385, 24577]
    private static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    private mutating func run() throws {
        var last = false
        while !last {
            last = try bits(1) == 1
            switch try bits(2) {
            case 0: try stored()
            case 1:
                let lengths = [Int](repeating: 8, count: 144) + [Int](repeating: 9, count: 112) + [Int](repeating: 7, count: 24) + [Int](repeating: 8, count: 8)
                try codes(try Huffman(lengths: lengths), try Huffman(lengths: [Int](repeating: 5, count: 30)))
            case 2: try dynamic()
            default: throw Failure(reason: "invalid block type")
            }
        }
    }

    private mutating func stored() throws {
        bitBuffer = 0
        bitCount = 0
        guard position + 4 <= input.count else { throw Failure(reason: "truncated stored block") }
        let length = Int(input[position]) | Int(input[position + 1]) << 8
        let complement = Int(input[position + 2]) | Int(input[position + 3]) << 8
        guard length == ~complement & 0xFFFF else { throw Failure(reason: "stored block length check failed") }
        position += 4
        guard position + length <= input.count else { throw Failure(reason: "truncated stored block") }
        output.append(contentsOf: input[position..<(position + length)])
        position += length
    }

    private mutating func dynamic() throws {
        let literalCount = try bits(5) + 257, distanceCount = try bits(5) + 1, codeCount = try bits(4) + 4
        let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
        var codeLengths = [Int](repeating: 0, count: 19)
        for i in 0..<codeCount { codeLengths[order[i]] = try bits(3) }
        let lengthCode = try Huffman(lengths: codeLengths)
        var lengths: [Int] = []
        while lengths.count < literalCount + distanceCount {
            let symbol = try decode(lengthCode)
            switch symbol {
            case 0..<16: lengths.append(symbol)
            case 16:
                guard let previous = lengths.last else { throw Failure(reason: "repeat with no previous length") }
                lengths += [Int](repeating: previous, count: 3 + (try bits(2)))
            case 17: lengths += [Int](repeating: 0, count: 3 + (try bits(3)))
            default: lengths += [Int](repeating: 0, count: 11 + (try bits(7)))
            }
        }
        guard lengths.count == literalCount + distanceCount else { throw Failure(reason: "too many code lengths") }
        try codes(try Huffman(lengths: Array(lengths[0..<literalCount])), try Huffman(lengths: Array(lengths[literalCount...])))
    }

    private mutating func codes(_ literals: Huffman, _ distances: Huffman) throws {
        while true {
            let symbol = try decode(literals)
            if symbol < 256 { output.append(UInt8(symbol)); continue }
            if symbol == 256 { return }
            let index = symbol - 257
            guard index < Self.lengthBase.count else { throw Failure(reason: "invalid length symbol") }
            let length = Self.lengthBase[index] + (try bits(Self.lengthExtra[index]))
            let distanceSymbol = try decode(distances)
            guard distanceSymbol < Self.distanceBase.count else { throw Failure(reason: "invalid distance symbol") }
            let distance = Self.distanceBase[distanceSymbol] + (try bits(Self.distanceExtra[distanceSymbol]))
            guard distance <= output.count else { throw Failure(reason: "distance too far back") }
            let start = output.count - distance
            for i in 0..<length { output.append(output[start + i]) }
        }
    }
}
