import ArgumentParser
import KdadPipeline

/// The kdad command line (entry point: ProcessEnvironment.swift). Subcommands live in files of their own.
struct Kdad: AsyncParsableCommand {
    /// One version string for `--version` and report provenance.
    static let version = KdadVersion.current

    static let configuration = CommandConfiguration(
        commandName: "kdad",
        abstract: "Knowledge-distillation anomaly detection for industrial visual inspection.",
        discussion: """
        kdad learns what a good part looks like from defect-free images only: a frozen ImageNet \
        teacher network and a student trained to imitate it. Where they disagree on a new image, \
        there is a defect. kdad scores each night's images per production lot and writes a report.

        Start with the demo:  scripts/demo.sh
        User guide:           Docs/README.md
        """,
        version: version,
        subcommands: [Run.self, Status.self, DemoData.self, InspectWeights.self, Bench.self, InternalTools.self]
    )
}

/// Throughput benchmarks. Speed targets live here, never in timed unit tests.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure kdad's speed on this machine (decode, shards, tensor kernels).",
        subcommands: [BenchImageDecode.self, BenchShards.self, BenchTensor.self, BenchTeacher.self]
    )
}

/// Hidden helpers used by kdad's own tests (e.g. a child process to kill mid-write).
struct InternalTools: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "internal",
        abstract: "Helpers for kdad's own test suite.",
        shouldDisplay: false,
        subcommands: [WriteShardForTests.self]
    )
}
