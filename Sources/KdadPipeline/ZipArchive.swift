import Foundation
import KdadSupport

/// Reads `.zip` inputs in place with the shared reader (`KdadSupport.ZipArchive`: zip64, stored and
/// deflated entries, CRC-32 checked): the central directory for the entry list, then one entry's bytes
/// on demand from the mapped file. Encrypted or otherwise unreadable entries are reported (and so
/// quarantined), never guessed at. Failures are `PipelineError.io` naming the archive (and entry).
enum ZipArchive {
    typealias Entry = ZipEntry

    /// The archive's files (no directories, no hidden files), sorted by name. Names are as written:
    /// `Entry.unsafe` flags the ones that would escape the work dir.
    static func entries(of url: URL) throws -> [Entry] {
        let archive: KdadSupport.ZipArchive
        do { archive = try KdadSupport.ZipArchive(try map(url)) } catch let error as ZipError {
            throw PipelineError(error, archive: url)
        }
        return archive.entries
            .filter { !$0.isDirectory && $0.name.split(separator: "/").last?.hasPrefix(".") != true }
            .sorted { $0.name < $1.name }
    }

    static func read(_ url: URL, entry: Entry) throws -> Data {
        let bytes = try map(url)
        do { return try KdadSupport.ZipArchive.contents(of: entry, in: bytes) } catch {
            throw PipelineError(error, archive: url)
        }
    }

    private static func map(_ url: URL) throws(PipelineError) -> Data {
        do { return try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw PipelineError.io(path: url.path, reason: "cannot open archive: \(error.localizedDescription)")
        }
    }
}

/// One file of a zip archive, as its central directory describes it (the shared `KdadSupport.ZipEntry`).
public typealias ZipEntry = KdadSupport.ZipEntry

extension ZipEntry {
    var encrypted: Bool { isEncrypted }
    /// The DOS date and time stamp as a number (date in the high half): part of the inputs' fingerprint.
    var modified: Double { Double(dosModified) }
    /// An absolute name or one with a `..` component would escape the work dir: refused, never read.
    var unsafe: Bool { name.hasPrefix("/") || name.split(separator: "/", omittingEmptySubsequences: false).contains("..") }
}

extension PipelineError {
    init(_ error: ZipError, archive: URL) {
        self = .io(path: archive.path + (error.entry.map { "!\($0)" } ?? ""), reason: error.reason)
    }
}

/// The shared DEFLATE decoder and CRC-32, under the names this module's code and tests use.
typealias Inflate = KdadSupport.Inflate
typealias CRC32 = KdadSupport.CRC32
