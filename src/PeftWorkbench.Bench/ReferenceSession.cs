using System.ComponentModel;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Bench;

/// <summary>
/// bench.py running beside us (`--serve`): built and warmed up once, then timing one workload whenever asked.
/// `peft bench` asks right after timing the same workload itself, so both sides of a ratio are measured seconds
/// apart: on a machine shared with other work, a change of load between "ours" and "theirs" would otherwise
/// move the ratio by 2x (seen here). A session that fails keeps the reason in <see cref="Problem"/> and
/// ignores further calls, so our figures still print.
/// </summary>
public sealed class ReferenceSession : IDisposable
{
    readonly Process? process;
    readonly List<string> errors = new();
    readonly List<string> notes;
    readonly Dictionary<string, double> best = new();
    readonly CancellationTokenRegistration kill;

    /// <summary>"inference" then the methods: the workloads bench.py built.</summary>
    public IReadOnlyList<string> Workloads { get; }
    /// <summary>Why the reference has no (more) figures; null while it works.</summary>
    public string? Problem { get; private set; }

    ReferenceSession(Process? process, IReadOnlyList<string> workloads, List<string> notes, string? problem, CancellationToken cancel)
    {
        this.process = process;
        Workloads = workloads;
        this.notes = notes;
        Problem = problem;
        if (process is not null) kill = cancel.Register(Kill);
    }

    /// <summary>Starts bench.py and waits until it has built and warmed up every workload (it first times 1 and 2
    /// torch threads when <paramref name="threads"/> is 0); its progress lines (stderr) go to <paramref name="log"/>.</summary>
    public static ReferenceSession Start(string python, string? script, VitConfig config, IReadOnlyList<string> methods,
        int batch, int steps, int threads, Action<string>? log = null, CancellationToken cancel = default)
    {
        var workloads = methods.Prepend("inference").ToList();
        if (script is null || !File.Exists(script))
            return new(null, workloads, new(), $"PyTorch reference not run: bench.py not found{(script is null ? "" : $" at {script}")} (it lives in environment/reference/).", cancel);
        var psi = ReferenceBench.StartInfo(python, script, config, methods, batch, steps, threads);
        var notes = ReferenceBench.ReferenceEnvironment(psi);
        Process process;
        try { process = Process.Start(psi) ?? throw new Win32Exception($"could not start {python}"); }
        catch (Win32Exception e)
        {
            return new(null, workloads, notes, $"PyTorch reference not run: cannot start {python} ({e.Message}); install it with `{ReferenceBench.InstallHint}`.", cancel);
        }
        var session = new ReferenceSession(process, workloads, notes, null, cancel);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (session.errors) session.errors.Add(e.Data);
            log?.Invoke(e.Data);
        };
        process.BeginErrorReadLine();
        var first = session.ReadLine();
        if (first is not null && JsonNode.Parse(first) is JsonObject o && o["ready"] is null)
            session.Problem = ReferenceBench.Parse(first).Problem ?? $"PyTorch reference: unexpected first line {first}";
        return session;
    }

    /// <summary>Times one workload there (bench.py's --steps steps); returns its images/s, or null once the session failed.</summary>
    public double? Time(string name)
    {
        if (Problem is not null) return null;
        try { process!.StandardInput.WriteLine($"time {name}"); }
        catch (IOException) { Fail(); return null; }
        var line = ReadLine();
        if (line is null) return null;
        double ips = (double?)JsonNode.Parse(line)?["images_per_second"] ?? throw new InvalidDataException($"bench.py: no images_per_second in {line}");
        best[name] = Math.Max(best.GetValueOrDefault(name), ips);
        return ips;
    }

    /// <summary>The best images/s seen so far for a workload (0 before any).</summary>
    public double Best(string name) => best.GetValueOrDefault(name);

    /// <summary>Ends the session: bench.py prints its figures (best rounds, trainable counts, peak RSS) and exits.</summary>
    public ReferenceResult Finish()
    {
        if (Problem is null)
        {
            try { process!.StandardInput.WriteLine("finish"); }
            catch (IOException) { Fail(); }
        }
        var line = Problem is null ? ReadLine() : null;
        if (line is null) return new(null, Problem ?? "PyTorch reference gave no figures.") { Notes = notes };
        process!.WaitForExit();
        var result = ReferenceBench.Parse(line);
        return result with { Notes = notes };
    }

    /// <summary>One line of bench.py's stdout, or null (and <see cref="Problem"/> set) when it ended or said something unreadable.</summary>
    string? ReadLine()
    {
        string? line;
        try { line = process!.StandardOutput.ReadLine(); }
        catch (IOException) { line = null; }
        if (line is null) { Fail(); return null; }
        try { JsonNode.Parse(line); return line; }
        catch (JsonException) { Problem = $"PyTorch reference printed something other than JSON: {line}"; return null; }
    }

    void Fail()
    {
        if (Problem is not null) return;
        try { process!.WaitForExit(5000); } catch (InvalidOperationException) { }
        string tail;
        lock (errors) tail = string.Join(" | ", errors.TakeLast(3));
        Problem = $"PyTorch reference failed{(process!.HasExited ? $" (exit {process.ExitCode})" : "")}: {tail}";
    }

    void Kill()
    {
        Problem ??= "PyTorch reference cancelled.";
        try { process?.Kill(true); } catch (InvalidOperationException) { }
    }

    public void Dispose()
    {
        kill.Dispose();
        if (process is null) return;
        if (!process.HasExited)
        {
            try { process.StandardInput.Close(); } catch (IOException) { }
            if (!process.WaitForExit(2000)) Kill();
        }
        process.Dispose();
    }
}
