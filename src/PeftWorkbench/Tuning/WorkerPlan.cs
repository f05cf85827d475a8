using System.Diagnostics;

namespace PeftWorkbench.Tuning;

/// <summary>
/// How a sweep on this machine shares its cores: <see cref="Workers"/> processes with <see cref="Threads"/> torch
/// threads each. Default: one worker per core with one thread each. Measured (issue 16, mini, 2 cores): 2 processes x
/// 1 thread train 1.60-1.85x the images per second of 1 process x 2 threads, because a ViT this small leaves most of
/// a second thread idle in OpenMP's barriers. Configurable by argument, or PEFT_WORKERS / PEFT_THREADS.
/// </summary>
public sealed record WorkerPlan(int Workers, int Threads, int Cores, double Load = 0)
{
    /// <summary>Bounded spinning for the case it pays (see <see cref="WaitPolicy"/>): the same as a lone process's.</summary>
    public const string SpinCount = Training.ThreadBudget.SpinCount;

    /// <summary>The cores this process may use (its affinity mask / cgroup quota, as .NET reads them).</summary>
    public static int MachineCores => Environment.ProcessorCount;

    /// <summary>The plan for <paramref name="workers"/> x <paramref name="threads"/> (null: PEFT_WORKERS / PEFT_THREADS,
    /// else one worker per core and cores / workers threads, at least 1). <paramref name="load"/>: what other processes
    /// keep running on the cores (null: the 1-minute load average now).</summary>
    public static WorkerPlan For(int? workers = null, int? threads = null, int? cores = null, double? load = null)
    {
        int c = cores ?? MachineCores;
        double l = load ?? LoadNow();
        int w = workers ?? EnvInt("PEFT_WORKERS") ?? c;
        Training.ThreadBudget.CheckPerCore(w, workers is null ? "workers (PEFT_WORKERS)" : "workers", c); // --workers 100000 would start that many processes
        int t = threads ?? EnvInt("PEFT_THREADS") ?? Math.Max(1, c / w);
        Training.ThreadBudget.CheckPerCore(t, threads is null ? "threads (PEFT_THREADS)" : "threads", c);
        return new WorkerPlan(w, t, c, l);
    }

    static double LoadNow()
    {
        try { return double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return 0; }
    }

    static int? EnvInt(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } s
        ? int.TryParse(s, out var v) ? v : throw new ArgumentException($"{name}='{s}' is not a whole number.")
        : null;

    /// <summary>At most as many workers as there are trials left to run.</summary>
    public WorkerPlan Capped(int openTrials) => this with { Workers = Math.Max(1, Math.Min(Workers, openTrials)) };

    /// <summary>
    /// libgomp's wait policy for a worker, chosen by processes x threads (plus what other processes already run, the
    /// load) against cores. PASSIVE (sleep in barriers) when they exceed the cores: spinning threads then starve each
    /// other (2 processes x 2 threads on 2 cores: 103 + 100 img/s spinning, bounded spin alike, against PASSIVE's
    /// 533 + 489; a lone 1 x 2 sweep with bounded spin at load 35 from others: 5 smoke trials in 10 minutes). With one
    /// thread per worker there is no team to wait for, so PASSIVE costs nothing. Otherwise (the cores are free for the
    /// sweep) a bounded spin: ACTIVE with GOMP_SPINCOUNT 100k, 1.08-1.17x for a lone process on an AVX-512 host (issue
    /// 16), 1.7x on the AVX2 one of 2026-11-26 (see Training.ThreadBudget).
    /// </summary>
    public string WaitPolicy => Threads > 1 && (long)Workers * Threads + Math.Ceiling(Load) <= Cores ? "ACTIVE" : "PASSIVE";

    /// <summary>What a worker process needs in its environment (read when libtorch loads, so set before it starts):
    /// OMP_NUM_THREADS, and the wait policy unless the user chose one (OMP_WAIT_POLICY / GOMP_SPINCOUNT set here).</summary>
    public IReadOnlyDictionary<string, string> WorkerEnvironment()
    {
        var env = new Dictionary<string, string> { ["OMP_NUM_THREADS"] = Threads.ToString() };
        if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is { Length: > 0 }) return env;
        env["OMP_WAIT_POLICY"] = WaitPolicy;
        if (WaitPolicy == "ACTIVE" && Environment.GetEnvironmentVariable("GOMP_SPINCOUNT") is not { Length: > 0 }) env["GOMP_SPINCOUNT"] = SpinCount;
        return env;
    }

    /// <summary>Starts a worker (<see cref="WorkerProcess"/>) on <paramref name="manifestPath"/> with <paramref name="worker"/>
    /// (a program as <see cref="PeftCommandLine.Worker"/> gives) and this plan's environment. Its stdin is a pipe this
    /// process holds open and never writes: when this process ends, however it ends (SIGKILL, the OOM killer, a front
    /// end closing the kernel), the system closes the pipe and the worker stops (see <see cref="ParentWatch"/>).
    /// The returned Process must stay undisposed while the worker runs (disposing it closes the pipe).</summary>
    public Process StartWorker(IReadOnlyList<string> worker, string manifestPath)
    {
        var psi = PeftCommandLine.StartInfo(worker, WorkerProcess.Arguments(manifestPath));
        psi.RedirectStandardInput = true;
        foreach (var (k, v) in WorkerEnvironment()) psi.Environment[k] = v;
        return Process.Start(psi) ?? throw new InvalidOperationException($"could not start {worker[0]}");
    }

    public string Describe() => $"{Workers} worker(s) x {Threads} thread(s) on {Cores} core(s), OpenMP {WaitPolicy}";
}

/// <summary>
/// A worker's tie to the process that started it: the worker reads its stdin (a pipe only the parent holds the write
/// end of) until end of file, which the system delivers when the parent ends for any reason, SIGKILL included. Chosen
/// over PR_SET_PDEATHSIG (Linux only; it fires when the forking *thread* ends, not the process, and not across the
/// `peft` launcher script) and over polling the parent's pid (a reused pid looks alive; a launcher in between is the
/// wrong parent): the pipe works through exec and shell launchers, on every OS, with no polling.
/// </summary>
public static class ParentWatch
{
    /// <summary>The worker option that turns the watch on (a worker run by hand or by Slurm has no such parent).</summary>
    public const string Flag = "--exit-with-parent";

    /// <summary>Calls <paramref name="parentGone"/> once, on a background thread, when stdin reaches end of file.</summary>
    public static void Start(Action parentGone)
    {
        var watch = new Thread(() =>
        {
            try
            {
                using var stdin = Console.OpenStandardInput();
                var buffer = new byte[256];
                while (stdin.Read(buffer, 0, buffer.Length) > 0) { } // the parent never writes: anything read is ignored
            }
            catch (IOException) { } // a broken stdin is a parent gone, too
            parentGone();
        }) { IsBackground = true, Name = "parent watch" };
        watch.Start();
    }
}

/// <summary>
/// How to start this library as a program: a worker (<see cref="Worker"/>) or the CLI starting itself again
/// (<see cref="Current"/>). Never through PATH: a notebook kernel's PATH is whatever its front end had, and a `peft`
/// found there may be another checkout's build.
/// </summary>
public static class PeftCommandLine
{
    /// <summary>The program that runs <see cref="WorkerProcess.Arguments"/>, first found of: PEFT_CLI (a command line,
    /// e.g. "dotnet /path/peft.dll": an explicit choice), this process when it is the `peft` CLI, this library itself
    /// (<see cref="OwnProgram"/>: beside its assembly in a build output, or from its NuGet package). Throws, naming
    /// what it looked for, when none is there.</summary>
    public static IReadOnlyList<string> Worker()
    {
        if (Environment.GetEnvironmentVariable("PEFT_CLI") is { Length: > 0 } given)
            return given.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return Current() ?? OwnProgram(typeof(WorkerProcess).Assembly.Location, out var lookedAt)
            ?? throw new InvalidOperationException($"no worker program: PEFT_CLI is unset, this process is not the peft CLI, and {lookedAt}. " +
                "Set PEFT_CLI (e.g. \"dotnet /path/peft.dll\") or PEFT_WORKERS=1 to train in this process.");
    }

    /// <summary>The library at <paramref name="assembly"/> as a program: `dotnet exec` of the assembly with the
    /// runtimeconfig.json and deps.json beside it (a build output holds them and every dependency; the NuGet package
    /// holds them in lib/TFM/). From a package (…/peftworkbench/VERSION/lib/TFM/PeftWorkbench.dll) the dependencies
    /// (TorchSharp, libtorch, SkiaSharp, ...) resolve in the packages folder the package itself was restored into, so
    /// nothing is copied and no native is carried twice. null (and why in <paramref name="lookedAt"/>) when the
    /// runtimeconfig is not there.</summary>
    public static IReadOnlyList<string>? OwnProgram(string assembly, out string lookedAt)
    {
        assembly = Path.GetFullPath(assembly);
        var stem = Path.ChangeExtension(assembly, null);
        var (config, deps) = (stem + ".runtimeconfig.json", stem + ".deps.json");
        lookedAt = $"{config} is missing";
        if (!File.Exists(config)) return null;
        var line = new List<string> { DotnetHost(), "exec", "--runtimeconfig", config };
        if (File.Exists(deps)) line.AddRange(new[] { "--depsfile", deps });
        if (PackagesFolder(assembly) is { } packages) line.AddRange(new[] { "--additionalprobingpath", packages });
        line.Add(assembly);
        return line;
    }

    /// <summary>PACKAGES for PACKAGES/ID/VERSION/lib/TFM/NAME.dll (a NuGet global packages folder's layout), else null.</summary>
    static string? PackagesFolder(string assembly)
    {
        var lib = Directory.GetParent(assembly)?.Parent;
        return lib?.Name == "lib" && lib.Parent?.Parent?.Parent is { } packages
            && lib.Parent.Parent.Name.Equals(Path.GetFileNameWithoutExtension(assembly), StringComparison.OrdinalIgnoreCase)
            ? packages.FullName : null;
    }

    /// <summary>The `dotnet` host of the runtime running this process: this process's own executable when it is
    /// `dotnet`, else the one at the root of the runtime's install (…/shared/Microsoft.NETCore.App/VERSION/ up three).
    /// An apphost (.NET Interactive's `dotnet-interactive`) is not `dotnet`; PATH is not asked.</summary>
    public static string DotnetHost()
    {
        var exe = Environment.ProcessPath ?? "";
        var host = OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet";
        if (Path.GetFileName(exe).Equals(host, StringComparison.OrdinalIgnoreCase)) return exe;
        var runtime = new DirectoryInfo(System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory().TrimEnd(Path.DirectorySeparatorChar));
        var root = runtime.Parent?.Parent?.Parent;
        var candidate = root is null ? null : Path.Combine(root.FullName, host);
        return candidate is not null && File.Exists(candidate) ? candidate
            : throw new InvalidOperationException($"no dotnet host: {exe} is not one and {candidate ?? runtime.FullName} is missing");
    }

    /// <summary>This process as a command line when it is the `peft` CLI: [dotnet, peft.dll] or [the apphost], absolute
    /// paths; null in any other host (a notebook kernel of .NET Interactive, a test). The one way the CLI starts itself
    /// again (workers, notebook children, kernelspecs, benchmarks, slurm scripts).</summary>
    public static IReadOnlyList<string>? Current()
    {
        if (System.Reflection.Assembly.GetEntryAssembly() is not { } entry || entry.GetName().Name != "peft") return null;
        var exe = Environment.ProcessPath ?? "dotnet";
        return Path.GetFileNameWithoutExtension(exe).Equals("dotnet", StringComparison.OrdinalIgnoreCase) ? new[] { exe, entry.Location } : new[] { exe };
    }

    /// <summary>How to start <paramref name="command"/> (a command line as <see cref="Find"/> gives) with more
    /// <paramref name="args"/>: no shell, every argument as given.</summary>
    public static ProcessStartInfo StartInfo(IReadOnlyList<string> command, params string[] args)
    {
        var psi = new ProcessStartInfo(command[0]) { UseShellExecute = false };
        foreach (var a in command.Skip(1).Concat(args)) psi.ArgumentList.Add(a);
        return psi;
    }
}
