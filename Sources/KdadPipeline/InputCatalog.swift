import Foundation

/// One image file the job names: its key (relative path, prefixed per input) and where its bytes are.
public struct InputItem: Sendable, Equatable {
    public enum Source: Sendable, Equatable {
        case file(URL)
        /// An entry of a tar archive: byte range of its data inside `archive` (for a `.tar.zst`, the
        /// decompressed copy in the cache; `origin` is the file the user named).
        case tarEntry(archive: URL, entry: String, offset: Int, length: Int, origin: URL)
        /// An entry of a zip archive.
        case zipEntry(archive: URL, entry: ZipEntry)
        /// An archive entry kdad will not read (absolute path or `..`): it is quarantined, never extracted.
        case refused(archive: URL, entry: String)
        /// A folder entry the globs select that is no readable regular file (a directory named like an
        /// image, a dangling symbolic link or a link loop, a FIFO or socket): quarantined with `reason`,
        /// never opened, so nothing blocks or vanishes silently.
        case notAFile(URL, reason: String)
    }
    public let key: String
    public let source: Source
    /// Location-relative path (how `mask` columns in a labels file refer to siblings).
    public let relativePath: String
    public let locationIndex: Int
    public let size: Int
    public let modified: Double

    public var displayPath: String {
        switch source {
        case let .file(url): return url.path
        case let .tarEntry(_, entry, _, _, origin), let .refused(origin, entry): return "\(origin.path)!\(entry)"
        case let .zipEntry(archive, entry): return "\(archive.path)!\(entry.name)"
        case let .notAFile(url, _): return url.path
        }
    }
}

/// The files of a job's inputs, listed deterministically (sorted by key).
public struct InputCatalog: Sendable {
    public let items: [InputItem]
    /// Every entry of each location by relative path (images and non-images), for mask lookups.
    let byLocation: [[String: InputItem]]
    public let locations: [InputRoot.Location]

    /// What `externalInputs` hashes: folder files by (key, size, mtime) after include/exclude, each
    /// archive by its own size and mtime. Reads no archive contents and writes nothing, so
    /// `kdad status` stays cheap and read-only.
    public static func fingerprint(_ inputs: [InputRoot]) throws -> String {
        var hasher = SHA256()
        for input in inputs {
            for (index, location) in input.locations.enumerated() {
                hasher.update("location \(location.kind.rawValue) \(location.url.path) \(location.keyPrefix)\n")
                if location.kind == .folder {
                    for item in try folderEntries(location, index: index) where input.selects(item.relativePath) {
                        hasher.update("\(item.key)\t\(item.size)\t\(item.modified)\n")
                    }
                } else {
                    let attributes = try? FileManager.default.attributesOfItem(atPath: location.url.path)
                    let size = attributes?[.size] as? Int ?? -1
                    let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
                    hasher.update("archive\t\(size)\t\(modified)\n")
                }
            }
        }
        return hasher.finalizeHex()
    }

    /// Lists every selected file; `.tar.zst` archives are first decompressed into `cacheDirectory`.
    public static func list(_ inputs: [InputRoot], cacheDirectory: URL) throws -> InputCatalog {
        var items: [InputItem] = []
        var byLocation: [[String: InputItem]] = []
        var locations: [InputRoot.Location] = []
        for input in inputs {
            for location in input.locations {
                let index = locations.count
                locations.append(location)
                let all = try entries(of: location, index: index, cacheDirectory: cacheDirectory)
                byLocation.append(Dictionary(all.map { ($0.relativePath, $0) }, uniquingKeysWith: { first, _ in first }))
                for item in all {
                    // Refused archive entries bypass the globs: they are always reported in quarantine.
                    let refused: Bool
                    if case .refused = item.source { refused = true } else { refused = false }
                    if input.selects(item.relativePath) || refused { items.append(item) }
                }
            }
        }
        items.sort { $0.key < $1.key }
        for (a, b) in zip(items, items.dropFirst()) where a.key == b.key {
            throw PipelineError.invalidInput(reason: "two input files have the key '\(a.key)' (\(a.displayPath) and \(b.displayPath)); give the inputs distinct 'name's")
        }
        return InputCatalog(items: items, byLocation: byLocation, locations: locations)
    }

    /// A sibling file (e.g. a mask) by location-relative path.
    public func sibling(_ relativePath: String, of item: InputItem) -> InputItem? {
        byLocation[item.locationIndex][relativePath]
    }

    static func key(prefix: String, _ relative: String) -> String { prefix.isEmpty ? relative : "\(prefix)/\(relative)" }

    static func entries(of location: InputRoot.Location, index: Int, cacheDirectory: URL) throws -> [InputItem] {
        switch location.kind {
        case .folder:
            return try folderEntries(location, index: index)
        case .tar, .tarZstd:
            let tar = location.kind == .tar ? location.url : try decompressedCopy(of: location.url, in: cacheDirectory)
            return try TarArchive.entries(of: tar).map { entry in
                let source: InputItem.Source = entry.unsafe ? .refused(archive: location.url, entry: entry.name)
                    : .tarEntry(archive: tar, entry: entry.name, offset: entry.offset, length: entry.size, origin: location.url)
                return InputItem(key: key(prefix: location.keyPrefix, entry.name), source: source,
                                 relativePath: entry.name, locationIndex: index, size: entry.size, modified: entry.modified)
            }
        case .zip:
            return try ZipArchive.entries(of: location.url).map { entry in
                let source: InputItem.Source = entry.unsafe ? .refused(archive: location.url, entry: entry.name) : .zipEntry(archive: location.url, entry: entry)
                return InputItem(key: key(prefix: location.keyPrefix, entry.name), source: source, relativePath: entry.name,
                                 locationIndex: index, size: entry.compressedSize, modified: entry.modified)
            }
        }
    }

    /// `<cache>/<stem>-<hash of path, size, mtime>.tar`, made once per archive version; older copies
    /// of the same archive are removed.
    static func decompressedCopy(of archive: URL, in cacheDirectory: URL) throws -> URL {
        let attributes = try? FileManager.default.attributesOfItem(atPath: archive.path)
        let size = attributes?[.size] as? Int ?? -1
        let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let stem = InputRoot.stem(of: archive).replacingOccurrences(of: "/", with: "_")
        let version = String(SHA256.hex(of: "\(archive.path)\t\(size)\t\(modified)").prefix(16))
        let copy = cacheDirectory.appendingPathComponent("\(stem)-\(version).tar")
        if FileManager.default.fileExists(atPath: copy.path) { return copy }
        try FileManager.default.createDirectory(at: cacheDirectory, withIntermediateDirectories: true)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: cacheDirectory.path)) ?? []
            where name.hasPrefix("\(stem)-") && name.hasSuffix(".tar") && name.count == stem.count + 21 {
            try? FileManager.default.removeItem(at: cacheDirectory.appendingPathComponent(name))
        }
        do { try ZstdFile.decompress(archive, to: copy) } catch let error as ZstdFile.Failure {
            throw PipelineError.io(path: error.path, reason: error.reason)
        }
        return copy
    }

    /// Extensions under which a directory is taken for a misplaced image (and reported).
    static let imageExtensions: Set<String> = ["png", "jpg", "jpeg", "tif", "tiff"]

    static func folderEntries(_ location: InputRoot.Location, index: Int) throws -> [InputItem] {
        let root = location.url.standardizedFileURL
        let rootPath = root.path.hasSuffix("/") ? root.path : root.path + "/"
        guard let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey, .contentModificationDateKey],
                                                              options: [.skipsHiddenFiles]) else {
            throw PipelineError.io(path: root.path, reason: "cannot list folder")
        }
        var items: [InputItem] = []
        let keys: Set<URLResourceKey> = [.isRegularFileKey, .isDirectoryKey, .isSymbolicLinkKey, .fileSizeKey, .contentModificationDateKey]
        for case let url as URL in enumerator {
            let values = try url.resourceValues(forKeys: keys)
            let path = url.standardizedFileURL.path
            guard path.hasPrefix(rootPath) else { continue }
            let relative = String(path.dropFirst(rootPath.count))
            func item(_ source: InputItem.Source, size: Int, modified: Double) -> InputItem {
                InputItem(key: key(prefix: location.keyPrefix, relative), source: source, relativePath: relative,
                          locationIndex: index, size: size, modified: modified)
            }
            if values.isRegularFile == true {
                items.append(item(.file(url.standardizedFileURL), size: values.fileSize ?? 0,
                                  modified: values.contentModificationDate?.timeIntervalSince1970 ?? 0))
            } else if values.isDirectory == true {
                // Directories are walked, not read; one named like an image file is reported, since
                // the user most likely expected an image there.
                if Self.imageExtensions.contains(url.pathExtension.lowercased()) {
                    items.append(item(.notAFile(url, reason: "is a directory, not an image file"), size: 0, modified: 0))
                }
            } else if values.isSymbolicLink == true {
                // A link to a regular file is read through; anything else is reported, never followed.
                var target = stat()
                let result = stat(url.path, &target)
                let code = result == 0 ? 0 : errno
                if result == 0, (target.st_mode & S_IFMT) == S_IFREG {
                    items.append(item(.file(url.standardizedFileURL), size: Int(target.st_size),
                                      modified: Double(target.st_mtim.tv_sec) + Double(target.st_mtim.tv_nsec) / 1e9))
                } else {
                    let reason = code == ELOOP ? "symbolic link loop"
                        : code == ENOENT ? "dangling symbolic link (its target does not exist)"
                        : code != 0 ? "unreadable symbolic link: \(String(cString: strerror(code)))"
                        : "symbolic link to a directory or special file, not an image file"
                    items.append(item(.notAFile(url, reason: reason), size: 0, modified: 0))
                }
            } else {
                items.append(item(.notAFile(url, reason: "not a regular file (FIFO, socket or device)"), size: 0, modified: 0))
            }
        }
        return items.sorted { $0.relativePath < $1.relativePath }
    }

    /// The bytes of an item.
    public func data(of item: InputItem) throws -> Data {
        switch item.source {
        case let .file(url):
            do { return try Data(contentsOf: url) } catch {
                throw PipelineError.io(path: url.path, reason: "cannot read: \(error.localizedDescription)")
            }
        case let .tarEntry(archive, _, offset, length, _):
            return try TarArchive.read(archive, offset: offset, length: length)
        case let .zipEntry(archive, entry):
            return try ZipArchive.read(archive, entry: entry)
        case let .refused(archive, entry):
            throw PipelineError.unsafeArchiveEntry(archive: archive.path, entry: entry)
        case let .notAFile(url, reason):
            throw PipelineError.io(path: url.path, reason: reason)
        }
    }
}

/// Reads ustar/GNU tar archives (uncompressed): regular files only. Entries are read in place (never
/// extracted); entries with absolute paths or `..` components are flagged unsafe and end up in the
/// quarantine list unread, so no name from an archive can steer a write anywhere.
enum TarArchive {
    struct Entry { let name: String; let offset: Int; let size: Int; let modified: Double; let unsafe: Bool }

    static func entries(of url: URL) throws -> [Entry] {
        let handle: FileHandle
        do { handle = try FileHandle(forReadingFrom: url) } catch {
            throw PipelineError.io(path: url.path, reason: "cannot open archive: \(error.localizedDescription)")
        }
        defer { try? handle.close() }
        var entries: [Entry] = []
        var position = 0
        var longName: String?
        while true {
            try handle.seek(toOffset: UInt64(position))
            guard let header = try handle.read(upToCount: 512), header.count == 512 else { break }
            if header.allSatisfy({ $0 == 0 }) { break }
            let bytes = [UInt8](header)
            func text(_ start: Int, _ length: Int) -> String {
                let slice = bytes[start..<(start + length)]
                let end = slice.firstIndex(of: 0) ?? slice.endIndex
                return String(decoding: bytes[start..<end], as: UTF8.self)
            }
            func octal(_ start: Int, _ length: Int) -> Int {
                Int(text(start, length).trimmingCharacters(in: CharacterSet(charactersIn: " \0")), radix: 8) ?? 0
            }
            let checksum = octal(148, 8)
            let computed = bytes.enumerated().reduce(0) { $0 + ((148..<156).contains($1.offset) ? 32 : Int($1.element)) }
            guard checksum == computed else {
                throw PipelineError.io(path: url.path, reason: "corrupt tar header at byte \(position)")
            }
            let size = octal(124, 12)
            let type = bytes[156]
            var name = text(0, 100)
            let prefix = text(345, 155)
            if text(257, 5) == "ustar", !prefix.isEmpty { name = prefix + "/" + name }
            if let long = longName { name = long; longName = nil }
            let dataOffset = position + 512
            position = dataOffset + (size + 511) / 512 * 512
            switch type {
            case UInt8(ascii: "L"):
                try handle.seek(toOffset: UInt64(dataOffset))
                let data = try handle.read(upToCount: size) ?? Data()
                longName = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
                continue
            case UInt8(ascii: "0"), 0:
                break
            default:
                continue  // directories, links, pax headers: not images
            }
            while name.hasPrefix("./") { name.removeFirst(2) }
            let components = name.split(separator: "/", omittingEmptySubsequences: false)
            guard !name.isEmpty else { continue }
            let unsafe = name.hasPrefix("/") || components.contains("..")
            if components.last?.hasPrefix(".") == true { continue }
            entries.append(Entry(name: name, offset: dataOffset, size: size, modified: Double(octal(136, 12)), unsafe: unsafe))
        }
        return entries.sorted { $0.name < $1.name }
    }

    static func read(_ url: URL, offset: Int, length: Int) throws -> Data {
        do {
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            try handle.seek(toOffset: UInt64(offset))
            let data = try handle.read(upToCount: length) ?? Data()
            guard data.count == length else { throw PipelineError.io(path: url.path, reason: "archive entry truncated") }
            return data
        } catch let error as PipelineError {
            throw error
        } catch {
            throw PipelineError.io(path: url.path, reason: "cannot read archive: \(error.localizedDescription)")
        }
    }
}

/// A labels CSV row (`image,split,label,defect_type,mask,lot`; only `image` is required).
public struct LabelRow: Sendable, Equatable {
    public var split: String?
    public var label: String?
    public var defectType: String?
    public var mask: String?
    public var lot: String?
}

enum LabelsCSV {
    /// Rows by image key. Simple CSV: comma-separated, optional double quotes, no embedded newlines.
    static func load(_ url: URL) throws -> [String: LabelRow] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw PipelineError.io(path: url.path, reason: "cannot read labels CSV: \(error.localizedDescription)")
        }
        var lines = text.split(whereSeparator: \.isNewline).map(String.init)
        guard !lines.isEmpty else { throw PipelineError.io(path: url.path, reason: "labels CSV is empty") }
        let header = fields(lines.removeFirst())
        guard let imageColumn = header.firstIndex(of: "image") else {
            throw PipelineError.io(path: url.path, reason: "labels CSV header has no 'image' column (header: \(header.joined(separator: ",")))")
        }
        func column(_ name: String) -> Int? { header.firstIndex(of: name) }
        let split = column("split"), label = column("label"), defect = column("defect_type"), mask = column("mask"), lot = column("lot")
        var rows: [String: LabelRow] = [:]
        for (number, line) in lines.enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let values = fields(line)
            func value(_ index: Int?) -> String? {
                guard let index, index < values.count, !values[index].isEmpty else { return nil }
                return values[index]
            }
            guard let image = value(imageColumn) else {
                throw PipelineError.io(path: url.path, reason: "line \(number + 2): empty 'image' value")
            }
            guard rows[image] == nil else {
                throw PipelineError.io(path: url.path, reason: "line \(number + 2): image '\(image)' is listed twice")
            }
            rows[image] = LabelRow(split: value(split), label: value(label), defectType: value(defect), mask: value(mask), lot: value(lot))
        }
        return rows
    }

    static func fields(_ line: String) -> [String] {
        var out: [String] = []
        var current = ""
        var quoted = false
        var iterator = Array(line).makeIterator()
        var pending: Character? = nil
        while let c = pending ?? iterator.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" { current.append("\"") } else { quoted = false; pending = next }
                    } else { quoted = false }
                } else { current.append(c) }
            } else if c == "\"" { quoted = true }
            else if c == "," { out.append(current.trimmingCharacters(in: .whitespaces)); current = "" }
            else { current.append(c) }
        }
        out.append(current.trimmingCharacters(in: .whitespaces))
        return out
    }
}
