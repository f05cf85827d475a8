using System.Diagnostics;
using System.IO.Compression;
using System.Text.Json;
using PeftWorkbench.Checkpoints;
using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.PyBridge;

namespace PeftWorkbench.Bench;

/// <summary>One measurement of `peft bench io`: a format, whose code ("ours" or "pybridge"), load or save.</summary>
public sealed record IoCase(string Format, string Side, string Op)
{
    public override string ToString() => $"{Op} {Format} {Side}";
}

/// <summary>What one child process measured: seconds for the operation and how far its peak RSS rose above the
/// RSS it had with the model built (the model's own memory is not counted; a staged copy of it is).</summary>
public sealed record IoResult(IoCase Case, double Seconds, long RssGrowthBytes, string? Error = null);

/// <summary>
/// Checkpoint load and save of a ViT, ours beside TorchSharp.PyBridge's load_py/save_py (and its safetensors
/// pair), for safetensors, .pth and npz (ours only: PyBridge has no npz). Each measurement runs in a fresh
/// child process (<see cref="Measure"/>), so one side's peak memory cannot hide the other's; rounds alternate
/// over all cases and the medians are kept, so other load on a shared machine falls on both sides alike.
/// </summary>
public static class IoBench
{
    public static IReadOnlyList<IoCase> AllCases { get; } = new IoCase[]
    {
        new("safetensors", "ours", "load"), new("safetensors", "pybridge", "load"),
        new("pth", "ours", "load"), new("pth", "pybridge", "load"),
        new("npz", "ours", "load"),
        new("safetensors", "ours", "save"), new("safetensors", "pybridge", "save"),
        new("pth", "ours", "save"), new("pth", "pybridge", "save"),
    };

    /// <summary>The cases of one operation ("load", "save"), or all of them.</summary>
    public static IReadOnlyList<IoCase> Cases(string? op = null) => AllCases.Where(c => op is null || c.Op == op).ToList();

    /// <summary>The file a case loads from (written by <see cref="Prepare"/>) or saves to, in <paramref name="dir"/>.</summary>
    public static string FileFor(IoCase c, string dir) =>
        Path.Combine(dir, c.Op == "load" ? $"model.{Ext(c.Format)}" : $"saved-{c.Side}.{Ext(c.Format)}");

    static string Ext(string format) => format == "pth" ? "pth" : format;

    /// <summary>Writes the model (seed 0) in the three formats with our writers: the files every load case reads.</summary>
    public static void Prepare(VitConfig config, string dir)
    {
        Directory.CreateDirectory(dir);
        using var model = new VisionTransformer(config, seed: 0);
        var sd = VitWeights.StateDict(model);
        VitWeights.Save(model, FileFor(new("safetensors", "", "load"), dir));
        // The .pth as torch.save lays it out (stored entries): PyBridge's writer deflates every entry, which
        // makes its files slow to write and to read (see the save rows); a user's .pth comes from torch.save.
        string pth = FileFor(new("pth", "", "load"), dir), deflated = pth + ".deflated";
        VitWeights.Save(model, deflated, "pth");
        StoreUncompressed(deflated, pth);
        File.Delete(deflated);
        NpzWriter.Write(FileFor(new("npz", "", "load"), dir), sd);
    }

    /// <summary>Copies a zip archive with every entry stored (uncompressed), in the same order.</summary>
    static void StoreUncompressed(string from, string to)
    {
        using var src = ZipFile.OpenRead(from);
        using var dst = ZipFile.Open(to, ZipArchiveMode.Create);
        foreach (var e in src.Entries)
        {
            using var i = e.Open();
            using var o = dst.CreateEntry(e.FullName, CompressionLevel.NoCompression).Open();
            i.CopyTo(o, 1 << 20);
        }
    }

    /// <summary>Runs one case in this process (meant to be a fresh child): builds the model, then times the
    /// operation and the peak RSS it reached above the RSS before it.</summary>
    public static IoResult Measure(IoCase c, VitConfig config, string dir)
    {
        using var model = new VisionTransformer(config, seed: 1);
        string file = FileFor(c, dir);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long before = ProcessMemory.Rss();
        ProcessMemory.ResetPeak();
        var clock = Stopwatch.StartNew();
        try
        {
            switch (c.Side, c.Op, c.Format)
            {
                case ("ours", "load", _): VitWeights.Load(model, file); break;
                case ("ours", "save", "pth"): VitWeights.Save(model, file, "pth"); break;
                case ("ours", "save", "safetensors"): VitWeights.Save(model, file, "safetensors"); break;
                case ("pybridge", "load", "pth"): model.load_py(file); break;
                case ("pybridge", "load", "safetensors"): model.load_safetensors(file); break;
                case ("pybridge", "save", "pth"): model.save_py(file); break;
                case ("pybridge", "save", "safetensors"): model.save_safetensors(file); break;
                default: throw new ArgumentException($"no such case: {c}");
            }
        }
        catch (Exception e) when (e is not ArgumentException)
        {
            return new IoResult(c, clock.Elapsed.TotalSeconds, 0, $"{e.GetType().Name}: {e.Message}");
        }
        double seconds = clock.Elapsed.TotalSeconds;
        long growth = Math.Max(0, ProcessMemory.PeakRss() - before);
        if (c.Op == "save") File.Delete(file);
        return new IoResult(c, seconds, growth);
    }

    public static string ToJson(IoResult r) => JsonSerializer.Serialize(new
    {
        format = r.Case.Format, side = r.Case.Side, op = r.Case.Op, seconds = r.Seconds, rss_growth = r.RssGrowthBytes, error = r.Error,
    });

    public static IoResult FromJson(string line)
    {
        using var doc = JsonDocument.Parse(line);
        var o = doc.RootElement;
        var c = new IoCase(o.GetProperty("format").GetString()!, o.GetProperty("side").GetString()!, o.GetProperty("op").GetString()!);
        return new IoResult(c, o.GetProperty("seconds").GetDouble(), o.GetProperty("rss_growth").GetInt64(),
            o.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null);
    }

    /// <summary>`peft bench io`: the model files written into <paramref name="dir"/> (null: a temp folder, deleted after),
    /// every case (or only <paramref name="only"/>'s) in a fresh `peft bench io-child` (<paramref name="cli"/>), the table.
    /// False when a case failed.</summary>
    public static bool Compare(IReadOnlyList<string> cli, VitConfig config, int rounds, string? dir, string? only, Action<string> log)
    {
        string folder = dir ?? Directory.CreateTempSubdirectory("peft-bench-io-").FullName;
        try
        {
            log($"bench io: {config.Name}, {rounds} rounds, files in {folder}; load average {SweepBench.LoadAverage()}");
            Prepare(config, folder);
            log($"  model files: {string.Join(", ", Directory.GetFiles(folder).Select(f => $"{Path.GetFileName(f)} {new FileInfo(f).Length / 1e6:F0} MB"))}");
            var results = Run(Cases(only), rounds, c => Child(cli, c, config.Name, folder), line => log("  " + line));
            log($"medians (load average {SweepBench.LoadAverage()}); +MB: peak RSS above the RSS with the model built");
            foreach (var line in Table(results)) log(line);
            return results.All(x => x.Error is null);
        }
        finally { if (dir is null) Directory.Delete(folder, true); }
    }

    static IoResult Child(IReadOnlyList<string> cli, IoCase c, string preset, string dir)
    {
        var psi = Tuning.PeftCommandLine.StartInfo(cli, "bench", "io-child", "--preset", preset, "--dir", dir, "--format", c.Format, "--side", c.Side, "--op", c.Op);
        psi.RedirectStandardOutput = psi.RedirectStandardError = true;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {cli[0]}");
        var stderr = p.StandardError.ReadToEndAsync();
        var lines = p.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        p.WaitForExit();
        var json = lines.LastOrDefault(l => l.StartsWith('{'));
        return json is not null ? FromJson(json) : new IoResult(c, 0, 0, $"child exited {p.ExitCode}: {stderr.Result.Trim()}");
    }

    /// <summary>All cases, <paramref name="rounds"/> times in alternating order, each through
    /// <paramref name="runChild"/> (a fresh process running <see cref="Measure"/>); the median of each case.</summary>
    public static IReadOnlyList<IoResult> Run(IReadOnlyList<IoCase> cases, int rounds, Func<IoCase, IoResult> runChild, Action<string>? log = null)
    {
        if (rounds < 1) throw new ArgumentException("rounds must be at least 1");
        var all = cases.ToDictionary(c => c, _ => new List<IoResult>());
        for (int round = 0; round < rounds; round++)
        {
            // Alternate the order between rounds so neither side always runs right after the other's page-cache work.
            var order = round % 2 == 0 ? cases : cases.Reverse().ToList();
            foreach (var c in order)
            {
                var r = runChild(c);
                all[c].Add(r);
                log?.Invoke($"round {round + 1}/{rounds}: {c,-26} {r.Seconds,6:F2} s  +{r.RssGrowthBytes / 1e6,5:F0} MB{(r.Error is null ? "" : "  " + r.Error)}");
            }
        }
        return cases.Select(c =>
        {
            var rs = all[c];
            var error = rs.Select(r => r.Error).FirstOrDefault(e => e is not null);
            return new IoResult(c, Median(rs.Select(r => r.Seconds)), (long)Median(rs.Select(r => (double)r.RssGrowthBytes)), error);
        }).ToList();
    }

    /// <summary>The median (NaN for none): every benchmark's summary of its rounds.</summary>
    public static double Median(IEnumerable<double> xs)
    {
        var s = xs.OrderBy(x => x).ToArray();
        return s.Length == 0 ? double.NaN : s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>The table: one row per format and operation, ours beside PyBridge's, with ratios.</summary>
    public static IEnumerable<string> Table(IReadOnlyList<IoResult> results)
    {
        yield return $"{"",-18} {"ours s",8} {"pybridge s",11} {"ratio",6}   {"ours +MB",9} {"pybridge +MB",13}";
        foreach (var g in results.GroupBy(r => (r.Case.Op, r.Case.Format)))
        {
            var ours = g.FirstOrDefault(r => r.Case.Side == "ours");
            var theirs = g.FirstOrDefault(r => r.Case.Side == "pybridge");
            string S(IoResult? r) => r is null ? "-" : r.Error is not null ? "failed" : r.Seconds.ToString("F2");
            string M(IoResult? r) => r is null || r.Error is not null ? "-" : (r.RssGrowthBytes / 1e6).ToString("F0");
            string ratio = ours is { Error: null } && theirs is { Error: null } && theirs.Seconds > 0 ? (ours.Seconds / theirs.Seconds).ToString("F2") : "";
            yield return $"{g.Key.Op + " " + g.Key.Format,-18} {S(ours),8} {S(theirs),11} {ratio,6}   {M(ours),9} {M(theirs),13}";
        }
        foreach (var r in results.Where(r => r.Error is not null))
            yield return $"  {r.Case} failed: {r.Error}";
    }
}
