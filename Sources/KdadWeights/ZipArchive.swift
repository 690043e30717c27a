import Foundation
import KdadSupport

/// The PyTorch checkpoint's view of the shared zip reader (`KdadSupport.ZipArchive`: zip64, CRC-32
/// checked, stored and deflated entries), reporting failures as `WeightFileError`s.
struct ZipArchive {
    typealias Entry = ZipEntry

    private let archive: KdadSupport.ZipArchive

    init(_ bytes: Data) throws(WeightFileError) {
        do { archive = try KdadSupport.ZipArchive(bytes) } catch { throw WeightFileError(error) }
    }

    var entries: [Entry] { archive.entries }

    func entry(named name: String) -> Entry? { archive.entry(named: name) }

    /// The bytes of an entry, inflated if deflated, checked against its CRC-32.
    func contents(of entry: Entry) throws(WeightFileError) -> Data {
        do { return try archive.contents(of: entry) } catch { throw WeightFileError(error) }
    }
}

extension WeightFileError {
    init(_ error: ZipError) {
        let kind: Kind = switch error.kind {
        case .truncated: .truncated
        case .malformed, .checksumMismatch: .malformed
        case .unsupported: .unsupported
        }
        self.init(kind: kind, key: error.entry, reason: error.reason)
    }
}
