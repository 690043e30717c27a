import Foundation
import XCTest
@testable import KdadSupport

final class SplitMix64Tests: XCTestCase {
    /// Expected values from the reference definition (Steele, Lea & Flood 2014; Vigna's splitmix64.c),
    /// computed in Python with explicit 64-bit masking:
    ///     s = (s + 0x9E3779B97F4A7C15) & M; z = s
    ///     z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    ///     z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    ///     output z ^ (z >> 31)            (M = 2**64 - 1)
    func testFirstOutputsMatchTheReferenceDefinition() {
        var zero = SplitMix64(seed: 0)
        XCTAssertEqual([zero.next(), zero.next(), zero.next()], [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        var one = SplitMix64(seed: 1)
        XCTAssertEqual([one.next(), one.next(), one.next()], [0x910A_2DEC_8902_5CC1, 0xBEEB_8DA1_658E_EC67, 0xF893_A2EE_FB32_555E])
        XCTAssertEqual(one.state, 3 &* 0x9E37_79B9_7F4A_7C15 &+ 1, "the state advances by the golden-ratio increment")
    }

    func testDerivedValuesUseTheDocumentedBits() {
        var generator = SplitMix64(seed: 0)
        // nextUniform is the top 24 bits of the next output over 2^24.
        XCTAssertEqual(generator.nextUniform(), Float(UInt64(0xE220_A839_7B1D_CDAF) >> 40) / 16_777_216)
        var bytes = [UInt8](repeating: 0, count: 11)
        bytes.withUnsafeMutableBytes { generator.fill($0) }
        // Eight bytes of the second output (little-endian), then the three low bytes of the third.
        XCTAssertEqual(bytes, [0xF4, 0x65, 0xB9, 0xA1, 0x6A, 0x9E, 0x78, 0x6E, 0x4F, 0x45, 0x09])

        var normals = SplitMix64(seed: 42)
        let samples = (0..<20_000).map { _ in Double(normals.nextNormal()) }
        let mean = samples.reduce(0, +) / Double(samples.count)
        let variance = samples.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(samples.count)
        XCTAssertEqual(mean, 0, accuracy: 0.03)  // 4 standard errors of the mean (1/√20000 ≈ 0.007)
        XCTAssertEqual(variance, 1, accuracy: 0.04)  // ≈ 4 standard errors of the variance (√(2/20000) = 0.01)
    }

    func testSameSeedSameStream() {
        var a = SplitMix64(seed: 2024), b = SplitMix64(seed: 2024), c = SplitMix64(seed: 2025)
        let streamA = (0..<64).map { _ in a.next() }
        XCTAssertEqual(streamA, (0..<64).map { _ in b.next() })
        XCTAssertNotEqual(streamA, (0..<64).map { _ in c.next() })
    }
}
