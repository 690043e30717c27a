import Foundation
import KdadTestSupport
import XCTest
@testable import KdadImage

/// Encoders and decoders agree exactly on lossless formats, for every supported variant.
final class RoundTripTests: XCTestCase {
    /// A 16-bit pattern with both extremes, near-extremes and seeded random values.
    func pattern16(count: Int, seed: UInt64) -> [UInt16] {
        var rng = SeededGenerator(seed: seed)
        var values = (0..<count).map { _ in UInt16.random(in: 0...UInt16.max, using: &rng) }
        let specials: [UInt16] = [0, 65535, 1, 65534, 32767, 32768, 255, 256]
        for (i, v) in specials.enumerated() where i < count { values[(i * 7919) % count] = v }
        return values
    }

    func pattern8(count: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededGenerator(seed: seed)
        var values = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for (i, v) in [UInt8(0), 255, 1, 254].enumerated() where i < count { values[(i * 7919) % count] = v }
        return values
    }

    /// Planar floats back to interleaved integers by round(v * maximum), as the brief's convention.
    func interleavedLevels(_ image: DecodedImage, maximum: Float) -> [Int] {
        let plane = image.width * image.height
        var out = [Int](repeating: -1, count: image.pixels.count)
        for c in 0..<image.channels {
            for i in 0..<plane { out[i * image.channels + c] = Int((image.pixels[c * plane + i] * maximum).rounded()) }
        }
        return out
    }

    func testTIFF16BitVariantsKeepValuesExactly() throws {
        let (width, height) = (37, 23)  // not a multiple of the tile or strip size
        let layouts: [TIFFLayout] = [.strips(rowsPerStrip: 0), .strips(rowsPerStrip: 5), .tiles(width: 16, height: 32)]
        var variants = 0
        for channels in 1...4 {
            let samples = pattern16(count: width * height * channels, seed: UInt64(100 + channels))
            for compression in TIFFCompression.allCases {
                for layout in layouts {
                    for separate in [false, true] where !(separate && channels == 1) {
                        let predictor = compression != .none && layout == .strips(rowsPerStrip: 5)
                        let options = TIFFEncodeOptions(compression: compression, layout: layout, separatePlanes: separate,
                                                        predictor: predictor)
                        let data = try TIFFEncoder.encode(samples16: samples, width: width, height: height, channels: channels,
                                                          options: options)
                        let label = "\(channels)ch \(options)"
                        let image = try ImageDecoder.decode(data: data, name: label)
                        XCTAssertEqual([image.width, image.height, image.channels, image.bitDepth], [width, height, channels, 16], label)
                        XCTAssertEqual(image.format, .tiff)
                        XCTAssertEqual(interleavedLevels(image, maximum: 65535), samples.map(Int.init), label)
                        XCTAssertEqual(image.pixels.firstIndex(where: { !($0 >= 0 && $0 <= 1) }), nil, label)
                        let header = try ImageDecoder.readHeader(data: data, name: label)
                        XCTAssertEqual(header, ImageHeader(width: width, height: height, channels: channels, bitDepth: 16, format: .tiff))
                        variants += 1
                    }
                }
            }
        }
        XCTAssertEqual(variants, 9 * (1 + 2 + 2 + 2))
    }

    func testTIFF8BitVariantsKeepValuesExactly() throws {
        let (width, height) = (33, 19)
        for channels in [1, 3] {
            let samples = pattern8(count: width * height * channels, seed: UInt64(200 + channels))
            for compression in TIFFCompression.allCases {
                for layout in [TIFFLayout.strips(rowsPerStrip: 4), .tiles(width: 16, height: 16)] {
                    let data = try TIFFEncoder.encode(samples8: samples, width: width, height: height, channels: channels,
                                                      options: TIFFEncodeOptions(compression: compression, layout: layout))
                    let image = try ImageDecoder.decode(data: data, name: "tiff8")
                    XCTAssertEqual([image.channels, image.bitDepth], [channels, 8])
                    XCTAssertEqual(interleavedLevels(image, maximum: 255), samples.map(Int.init), "\(channels) \(compression) \(layout)")
                }
            }
        }
    }

    func testTIFFMinIsWhiteIsInverted() throws {
        let samples: [UInt16] = [0, 1, 65534, 65535, 1000, 60000]
        var patcher = TIFFTagPatcher(try TIFFEncoder.encode(samples16: samples, width: 3, height: 2, channels: 1,
                                                            options: TIFFEncodeOptions(compression: .none)))
        XCTAssertTrue(patcher.set(tag: 262, to: 0))  // PhotometricInterpretation = WhiteIsZero
        let image = try ImageDecoder.decode(data: patcher.data, name: "miniswhite")
        XCTAssertEqual(interleavedLevels(image, maximum: 65535), samples.map { 65535 - Int($0) })
    }

    func testPNG16BitKeepsValuesExactly() throws {
        let (width, height) = (29, 17)
        for colorType in [PNGColorType.gray, .grayAlpha, .rgb, .rgba] {
            for interlaced in [false, true] {
                let samples = pattern16(count: width * height * colorType.samplesPerPixel, seed: UInt64(colorType.rawValue))
                let data = try PNGEncoder.encode(samples16: samples, width: width, height: height, colorType: colorType,
                                                 interlaced: interlaced)
                XCTAssertEqual(HeaderBytes.pngIHDR(data)?.bitDepth, 16)
                let image = try ImageDecoder.decode(data: data, name: "png16")
                XCTAssertEqual([image.channels, image.bitDepth], [colorType.samplesPerPixel, 16])
                XCTAssertEqual(interleavedLevels(image, maximum: 65535), samples.map(Int.init), "\(colorType) interlaced \(interlaced)")
            }
        }
        // The convenience entry point.
        let gray = pattern16(count: 64, seed: 9)
        let image = try ImageDecoder.decode(data: try PNGEncoder.encodeGray16(gray, width: 8, height: 8), name: "gray16")
        XCTAssertEqual(interleavedLevels(image, maximum: 65535), gray.map(Int.init))
    }

    func testPNG8BitGrayAndRGBAreLossless() throws {
        let (width, height) = (31, 21)
        let gray = pattern8(count: width * height, seed: 1)
        let rgb = pattern8(count: width * height * 3, seed: 2)
        let grayImage = try ImageDecoder.decode(data: try PNGEncoder.encodeGray8(gray, width: width, height: height), name: "g8")
        let rgbImage = try ImageDecoder.decode(data: try PNGEncoder.encodeRGB8(rgb, width: width, height: height), name: "rgb8")
        XCTAssertEqual([grayImage.channels, grayImage.bitDepth, rgbImage.channels, rgbImage.bitDepth], [1, 8, 3, 8])
        XCTAssertEqual(interleavedLevels(grayImage, maximum: 255), gray.map(Int.init))
        XCTAssertEqual(interleavedLevels(rgbImage, maximum: 255), rgb.map(Int.init))
        // Planar layout: channel 0 of pixel (x, y) is red.
        XCTAssertEqual(rgbImage[x: 4, y: 3, channel: 0], Float(rgb[(3 * width + 4) * 3]) / 255)
        XCTAssertEqual(rgbImage[x: 4, y: 3, channel: 2], Float(rgb[(3 * width + 4) * 3 + 2]) / 255)

        // Floats from a decode re-encode to the same file content (8 and 16 bits).
        for image in [grayImage, rgbImage] {
            let again = try ImageDecoder.decode(data: try PNGEncoder.encode(image, bitDepth: 8), name: "again")
            XCTAssertEqual(again.pixels, image.pixels)
        }
        let wide = try ImageDecoder.decode(data: try PNGEncoder.encode(rgbImage, bitDepth: 16), name: "wide")
        XCTAssertEqual(interleavedLevels(wide, maximum: 65535), rgb.map { Int($0) * 257 })
    }

    func testPlanarFloatEncodingClampsAndRounds() throws {
        let values: [Float] = [-1, 0, 0.5 / 255, 0.49 / 255, 0.5, 1, 2, .nan, .infinity]
        let data = try PNGEncoder.encode(planar: values, width: 9, height: 1, channels: 1, bitDepth: 8)
        let image = try ImageDecoder.decode(data: data, name: "clamped")
        XCTAssertEqual(interleavedLevels(image, maximum: 255), [0, 0, 1, 0, 128, 255, 255, 0, 255])
        XCTAssertThrowsError(try PNGEncoder.encode(planar: values, width: 3, height: 2, channels: 1, bitDepth: 8))
        XCTAssertThrowsError(try PNGEncoder.encode(planar: values, width: 9, height: 1, channels: 1, bitDepth: 12))
    }

    func testLowBitDepthGrayFromHandmadeAndEncodedFiles() throws {
        let (width, height) = (13, 5)  // rows end mid-byte at every depth
        for depth in [1, 2, 4] {
            let maximum = (1 << depth) - 1
            var rng = SeededGenerator(seed: UInt64(depth))
            var values = (0..<(width * height)).map { _ in Int.random(in: 0...maximum, using: &rng) }
            values[0] = 0
            values[1] = maximum
            let handmade = HandmadePNG.file(width: width, height: height, bitDepth: depth, colorType: 0, samples: values,
                                            samplesPerPixel: 1)
            let encoded = try PNGEncoder.encode(samples8: values.map(UInt8.init), width: width, height: height,
                                                colorType: .gray, bitDepth: depth)
            XCTAssertEqual(HeaderBytes.pngIHDR(encoded)?.bitDepth, depth)
            for (label, data) in [("handmade", handmade), ("encoded", encoded)] {
                let image = try ImageDecoder.decode(data: data, name: "\(label) \(depth)-bit")
                XCTAssertEqual([image.channels, image.bitDepth], [1, depth], label)
                // value / (2^depth - 1), exactly as the float division gives it.
                XCTAssertEqual(image.pixels, values.map { Float($0) / Float(maximum) }, "\(label) \(depth)-bit")
                XCTAssertEqual(try ImageDecoder.readHeader(data: data, name: label).bitDepth, depth)
            }
        }
    }

    func testPaletteExpandsToRGBOrRGBA() throws {
        let palette: [UInt8] = [0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30]
        let alpha: [UInt8] = [0, 128, 255]  // entry 3 has no tRNS entry: opaque
        let indices = [0, 1, 2, 3, 3, 2, 1, 0, 1, 1]
        let (width, height) = (5, 2)
        func expected(withAlpha: Bool) -> [Float] {
            var planes: [[Float]] = [[], [], []]
            for i in indices { for c in 0..<3 { planes[c].append(Float(palette[i * 3 + c]) / 255) } }
            if withAlpha { planes.append(indices.map { Float($0 < alpha.count ? alpha[$0] : 255) / 255 }) }
            return planes.flatMap { $0 }
        }
        for depth in [2, 4, 8] {
            for withAlpha in [false, true] {
                var chunks = [HandmadePNG.Chunk(type: "PLTE", data: palette)]
                if withAlpha { chunks.append(HandmadePNG.Chunk(type: "tRNS", data: alpha)) }
                let handmade = HandmadePNG.file(width: width, height: height, bitDepth: depth, colorType: 3, samples: indices,
                                                samplesPerPixel: 1, extraChunks: chunks)
                let encoded = try PNGEncoder.encode(samples8: indices.map(UInt8.init), width: width, height: height,
                                                    colorType: .palette, bitDepth: depth, palette: palette,
                                                    transparency: withAlpha ? alpha : [])
                for (label, data) in [("handmade", handmade), ("encoded", encoded)] {
                    let image = try ImageDecoder.decode(data: data, name: label)
                    XCTAssertEqual([image.channels, image.bitDepth], [withAlpha ? 4 : 3, 8], "\(label) \(depth)")
                    XCTAssertEqual(image.pixels, expected(withAlpha: withAlpha), "\(label) depth \(depth) alpha \(withAlpha)")
                }
            }
        }
    }

    func testGrayAlphaRGBAAndTransparencyKey() throws {
        let (width, height) = (6, 4)
        let grayAlpha = pattern8(count: width * height * 2, seed: 31)
        let rgba = pattern8(count: width * height * 4, seed: 32)
        for (colorType, samples) in [(PNGColorType.grayAlpha, grayAlpha), (.rgba, rgba)] {
            let handmade = HandmadePNG.file(width: width, height: height, bitDepth: 8, colorType: Int(colorType.rawValue),
                                            samples: samples.map(Int.init), samplesPerPixel: colorType.samplesPerPixel)
            for data in [handmade, try PNGEncoder.encode(samples8: samples, width: width, height: height, colorType: colorType, interlaced: true)] {
                let image = try ImageDecoder.decode(data: data, name: "\(colorType)")
                XCTAssertEqual([image.channels, image.bitDepth], [colorType.samplesPerPixel, 8])
                XCTAssertEqual(interleavedLevels(image, maximum: 255), samples.map(Int.init), "\(colorType)")
            }
        }
        // A gray image with a tRNS key colour gains an alpha channel: 0 where the key matches.
        let gray = [0, 5, 9, 5, 15, 5]
        let keyed = HandmadePNG.file(width: 3, height: 2, bitDepth: 4, colorType: 0, samples: gray, samplesPerPixel: 1,
                                     extraChunks: [HandmadePNG.Chunk(type: "tRNS", data: [0, 5])])
        let image = try ImageDecoder.decode(data: keyed, name: "keyed")
        XCTAssertEqual([image.channels, image.bitDepth], [2, 4])
        XCTAssertEqual(Array(image.plane(0)), gray.map { Float($0) / 15 })
        XCTAssertEqual(Array(image.plane(1)), gray.map { $0 == 5 ? 0 : 1 })
    }

    /// A smooth pattern JPEG compresses well; used for the lossy checks below.
    func smoothPattern(width: Int, height: Int, channels: Int) -> [UInt8] {
        var out: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<channels {
                    let v = 128 + 100 * sin(Double(x) * 0.07 + Double(c)) * cos(Double(y) * 0.05)
                    out.append(UInt8(v.rounded()))
                }
            }
        }
        return out
    }

    func testJPEGBaselineAndProgressiveGrayAndColour() throws {
        let (width, height) = (70, 45)
        for channels in [1, 3] {
            let samples = smoothPattern(width: width, height: height, channels: channels)
            let baseline = try JPEGEncoder.encode(samples8: samples, width: width, height: height, channels: channels, quality: 95)
            let progressive = try JPEGEncoder.encode(samples8: samples, width: width, height: height, channels: channels,
                                                     quality: 95, progressive: true)
            XCTAssertNotEqual(baseline, progressive)
            // The frame header type tells the two apart: SOF0 baseline, SOF2 progressive.
            let baselineSOF = try XCTUnwrap(HeaderBytes.jpegSOF(baseline))
            let progressiveSOF = try XCTUnwrap(HeaderBytes.jpegSOF(progressive))
            XCTAssertEqual([baseline[baselineSOF.offset - 1], progressive[progressiveSOF.offset - 1]], [0xC0, 0xC2])

            let a = try ImageDecoder.decode(data: baseline, name: "baseline")
            let b = try ImageDecoder.decode(data: progressive, name: "progressive")
            for image in [a, b] {
                XCTAssertEqual([image.width, image.height, image.channels, image.bitDepth, ], [width, height, channels, 8])
                XCTAssertEqual(image.format, .jpeg)
                let levels = interleavedLevels(image, maximum: 255)
                let worst = zip(levels, samples).map { abs($0 - Int($1)) }.max() ?? 0
                // Quality 95 on a smooth pattern: libjpeg-turbo 2.1 gives at most 1 level (gray) and
                // 6 levels (colour, from 4:2:0 chroma subsampling); the bounds leave one level of room.
                XCTAssertLessThanOrEqual(worst, channels == 1 ? 2 : 7, "channels \(channels)")
            }
            // Same quantisation, same coefficients: progressive decodes to the very same pixels.
            XCTAssertEqual(a.pixels, b.pixels)
        }
    }

    func testCMYKJPEGIsAnUnsupportedVariant() throws {
        let samples = smoothPattern(width: 16, height: 16, channels: 4)
        let data = try JPEGEncoder.encode(samples8: samples, width: 16, height: 16, channels: 4)
        for attempt in [{ _ = try ImageDecoder.decode(data: data, name: "cmyk.jpg") },
                        { _ = try ImageDecoder.readHeader(data: data, name: "cmyk.jpg") }] {
            let error = expectDecodeError(attempt, "CMYK")
            XCTAssertEqual(error?.reason.kind, .unsupportedVariant)
            XCTAssertTrue(error?.description.contains("cmyk.jpg") ?? false)
        }
    }

    func testAtomicWriteAndFileDecode() throws {
        let directory = try makeTemporaryDirectory("kdad-image")
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("heatmap.png")
        let values = (0..<(20 * 10)).map { Float($0) / 199 }
        try PNGEncoder.write(planar: values, width: 20, height: 10, channels: 1, bitDepth: 16, to: url)
        try PNGEncoder.write(planar: values.reversed(), width: 20, height: 10, channels: 1, bitDepth: 16, to: url)  // replaces
        let image = try ImageDecoder.decode(contentsOf: url)
        XCTAssertEqual(interleavedLevels(image, maximum: 65535), values.reversed().map { Int(($0 * 65535).rounded()) })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["heatmap.png"])

        let missingDirectory = directory.appendingPathComponent("absent/out.png")
        XCTAssertThrowsError(try PNGEncoder.write(planar: values, width: 20, height: 10, channels: 1, bitDepth: 8, to: missingDirectory)) {
            XCTAssertTrue(($0 as? ImageEncodeError)?.destination == missingDirectory.path, "\($0)")
        }
        let missing = expectDecodeError({ _ = try ImageDecoder.decode(contentsOf: directory.appendingPathComponent("none.png")) }, "missing")
        XCTAssertEqual(missing?.reason.kind, .unreadable)
        XCTAssertEqual(expectDecodeError({ _ = try ImageDecoder.decode(contentsOf: directory) }, "directory")?.reason.kind, .unreadable)
        XCTAssertEqual(expectDecodeError({ _ = try ImageDecoder.readHeader(contentsOf: directory.appendingPathComponent("none")) }, "missing")?
            .reason.kind, .unreadable)
    }

    func testTIFFHeaderAtTheEndIsFoundByReadHeader() throws {
        // libtiff writes the directory after the pixel data: a file larger than the header prefix
        // that readHeader reads first must still report its size.
        let (width, height) = (600, 300)
        let samples = pattern16(count: width * height, seed: 5)
        let data = try TIFFEncoder.encode(samples16: samples, width: width, height: height, channels: 1,
                                          options: TIFFEncodeOptions(compression: .none))
        XCTAssertGreaterThan(data.count, 256 * 1024)
        let directory = try makeTemporaryDirectory("kdad-image")
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("big.tif")
        try AtomicFile.write(data, to: url)
        XCTAssertEqual(try ImageDecoder.readHeader(contentsOf: url),
                       ImageHeader(width: width, height: height, channels: 1, bitDepth: 16, format: .tiff))
    }

    func testFormatComesFromBytesNotName() throws {
        let png = try PNGEncoder.encodeGray8([1, 2, 3, 4], width: 2, height: 2)
        XCTAssertEqual(ImageFormat.detect(png), .png)
        XCTAssertEqual(try ImageDecoder.decode(data: png, name: "looks-like.jpg").format, .png)
        let jpeg = try JPEGEncoder.encode(samples8: [UInt8](repeating: 9, count: 64), width: 8, height: 8, channels: 1)
        XCTAssertEqual(try ImageDecoder.decode(data: jpeg, name: "named.tiff").format, .jpeg)
        XCTAssertNil(ImageFormat.detect(Data("GIF89a".utf8)))
    }
}
