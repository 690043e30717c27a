import Foundation

/// Process-wide settings that must be in place before the shared libraries start their threads.
enum ProcessEnvironment {
    /// Debian's oneDNN runs its kernels on GNU OpenMP threads, which by default spin for a while
    /// after every parallel region. kdad calls thousands of small oneDNN primitives per training
    /// epoch with its own parallel loops (and OpenBLAS) in between, so the spinning OpenMP thread
    /// steals one of the two cores from them: training ran 3–4× slower (5.4 vs 21.8 images/s on MTD,
    /// identical losses). libgomp reads OMP_WAIT_POLICY only when it is loaded, before `main`, so the
    /// process re-executes itself once with the passive policy. A value the user set is respected.
    static func ensurePassiveOpenMPWaiting() {
        guard getenv("OMP_WAIT_POLICY") == nil else { return }
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1)
        // On failure (no /proc), carry on with the default policy: slower, not wrong.
        _ = execv("/proc/self/exe", CommandLine.unsafeArgv)
    }
}

/// The entry point: fixes the process environment, then hands over to the command line parser.
@main
enum KdadEntryPoint {
    static func main() async {
        ProcessEnvironment.ensurePassiveOpenMPWaiting()
        await Kdad.main()
    }
}
