using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Bench;

/// <summary>One row of the comparison; Ratio is ours / PyTorch's (higher is better for images/s).</summary>
public sealed record ComparisonRow(string Name, double Ours, double? Reference, long? OursTrainable, long? ReferenceTrainable, double Target)
{
    public double? Ratio => Reference is > 0 ? Ours / Reference : null;
    public bool? MeetsTarget => Ratio is double r ? r >= Target : null;
    /// <summary>Both sides train the same number of tensors' elements (always true for inference).</summary>
    public bool CountsAgree => OursTrainable == ReferenceTrainable;
}

/// <summary>
/// TorchSharp against the PyTorch reference, row by row, with issue 5's targets: training steps >= 1.0x,
/// inference >= 1.3x, peak RSS <= 1.2x PyTorch's. A comparison is only fair when both sides train the same
/// parameters: a trainable-count mismatch is reported as such, never silently tabulated.
/// </summary>
public sealed class BenchComparison
{
    public const double TrainTarget = 1.0, InferenceTarget = 1.3, RssTarget = 1.2;

    public BenchFigures Ours { get; }
    public BenchFigures? Reference { get; }
    /// <summary>Why there is no reference (how to install it), when there is none.</summary>
    public string? ReferenceProblem { get; }
    public IReadOnlyList<ComparisonRow> Rows { get; }
    /// <summary>How the reference's environment was set (see ReferenceBench).</summary>
    public IReadOnlyList<string> Notes { get; }

    public BenchComparison(BenchFigures ours, ReferenceResult? reference)
    {
        Ours = ours;
        Reference = reference?.Figures;
        Notes = Reference is null ? Array.Empty<string>() : reference!.Notes;
        ReferenceProblem = reference is null ? null : reference.Problem ?? (reference.Figures is null ? "PyTorch reference gave no figures." : null);
        Rows = ours.Rows.Select(r =>
        {
            var other = Reference?.Row(r.Name);
            return new ComparisonRow(r.Name, r.ImagesPerSecond, other?.ImagesPerSecond, r.TrainableExclHead, other?.TrainableExclHead,
                r.Name == "inference" ? InferenceTarget : TrainTarget);
        }).ToList();
    }

    /// <summary>Ours / PyTorch's peak RSS (lower is better).</summary>
    public double? RssRatio => Reference is { PeakRssBytes: > 0 } r ? (double)Ours.PeakRssBytes / r.PeakRssBytes : null;

    /// <summary>Rows whose trainable counts differ, or that the reference did not run, in words.</summary>
    public IReadOnlyList<string> CountMismatches => Reference is null ? Array.Empty<string>() : Rows
        .Where(r => !r.CountsAgree || r.Reference is null)
        .Select(r => r.Reference is null
            ? $"{r.Name}: the PyTorch reference has no such row"
            : $"{r.Name}: TorchSharp trains {N(r.OursTrainable)} parameters (head excluded), PyTorch {N(r.ReferenceTrainable)}")
        .ToList();

    /// <summary>Everything that makes the comparison unfair or incomplete, one line each.</summary>
    public IReadOnlyList<string> Warnings()
    {
        var w = new List<string>();
        if (ReferenceProblem is not null) w.Add(ReferenceProblem);
        foreach (var m in CountMismatches) w.Add($"UNFAIR COMPARISON: trainable-parameter counts differ: {m}");
        if (Reference is { FastBlas: false })
            w.Add($"UNFAIR COMPARISON: the PyTorch reference runs on a slow reference BLAS ({Reference.Blas}); install libopenblas0-pthread (`{ReferenceBench.InstallHint}`)");
        return w;
    }

    /// <summary>The comparison as a markdown table, with the trainable-count check and the setups under it.</summary>
    public string Table()
    {
        var sb = new StringBuilder();
        bool withRef = Reference is not null;
        sb.AppendLine(withRef
            ? "| workload | trainable (excl. head) | TorchSharp img/s | PyTorch img/s | TorchSharp/PyTorch | target |"
            : "| workload | trainable (excl. head) | TorchSharp img/s |");
        sb.AppendLine(withRef ? "|---|---:|---:|---:|---:|---|" : "|---|---:|---:|");
        foreach (var r in Rows)
        {
            string name = BenchMode.Parse(r.Name).Name == "inference" ? r.Name : $"{r.Name} step";
            string count = r.OursTrainable is null ? "-" : r.CountsAgree || !withRef ? N(r.OursTrainable) : $"{N(r.OursTrainable)} vs {N(r.ReferenceTrainable)} MISMATCH";
            sb.AppendLine(withRef
                ? $"| {name} | {count} | {r.Ours:F0} | {F0(r.Reference)} | {F2(r.Ratio)} | {Verdict(r.MeetsTarget, $">= {r.Target:0.0#}")} |"
                : $"| {name} | {count} | {r.Ours:F0} |");
        }
        string ours = Mb(Ours.PeakRssBytes);
        sb.AppendLine(withRef
            ? $"| peak RSS (MB) | | {ours} | {Mb(Reference!.PeakRssBytes)} | {F2(RssRatio)} | {Verdict(RssRatio is double q ? q <= RssTarget : null, $"<= {RssTarget:0.0#}")} |"
            : $"| peak RSS (MB) | | {ours} |");
        if (withRef)
            sb.AppendLine(CountMismatches.Count == 0
                ? $"trainable-parameter counts agree on all {Rows.Count(r => r.OursTrainable is not null)} methods (a like-for-like comparison)"
                : $"!! trainable-parameter counts DIFFER on {CountMismatches.Count} row(s): those ratios compare different work");
        sb.AppendLine($"TorchSharp: {Ours.Version}, {Ours.Threads}");
        if (withRef) sb.AppendLine($"PyTorch:    {Reference!.Version}, {Reference.Threads}; BLAS {Reference.Blas}");
        foreach (var note in Notes) sb.AppendLine("note: " + note);
        return sb.ToString();
    }

    /// <summary>Issue 16's targets: training workloads at our best mode (float32 or bf16, the faster) >= 1.3x PyTorch's
    /// autocast-bf16 and >= 2x its float32; inference >= 2x float32.</summary>
    public const double BestOverAutocastTarget = 1.3, BestOverFp32Target = 2.0;

    /// <summary>Per workload with a bf16 twin (`peft bench --bf16`): ours in float32 and bf16, our best, PyTorch's float32
    /// and autocast-bf16, and the ratios against issue 16's targets. Empty without bf16 rows.</summary>
    public string BestModeTable()
    {
        var byName = Rows.ToDictionary(r => r.Name);
        var bases = Rows.Where(r => !r.Name.Contains(':') && byName.ContainsKey(r.Name + BenchMode.Bf16Suffix)).ToList();
        if (bases.Count == 0) return "";
        var sb = new StringBuilder();
        sb.AppendLine("| workload | ours fp32 | ours bf16 | ours best | PyTorch fp32 | PyTorch autocast-bf16 | best / PyTorch bf16 | best / PyTorch fp32 |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in bases)
        {
            var bf = byName[r.Name + BenchMode.Bf16Suffix];
            bool bf16Best = bf.Ours > r.Ours;
            double best = Math.Max(r.Ours, bf.Ours);
            double? overBf16 = bf.Reference is > 0 ? best / bf.Reference : null, overFp32 = r.Reference is > 0 ? best / r.Reference : null;
            bool training = r.Name != "inference";
            sb.AppendLine($"| {(training ? r.Name + " step" : r.Name)} | {r.Ours:F0} | {bf.Ours:F0} | {best:F0} ({(bf16Best ? "bf16" : "fp32")}) | {F0(r.Reference)} | {F0(bf.Reference)} | " +
                $"{F2(overBf16)}{(training ? " " + Verdict(overBf16 is double x ? x >= BestOverAutocastTarget : null, $">= {BestOverAutocastTarget:0.0#}") : "")} | " +
                $"{F2(overFp32)} {Verdict(overFp32 is double y ? y >= BestOverFp32Target : null, $">= {BestOverFp32Target:0.0#}")} |");
        }
        sb.AppendLine("bf16: ours = the whole model in bfloat16 with float32 masters and optimizer state (TrainOptions.Bf16); PyTorch = " +
            "torch.autocast(\"cpu\", torch.bfloat16) over forward and loss, float32 weights; both under the allocator settings noted above.");
        return sb.ToString();
    }

    /// <summary>`peft bench`: TorchSharp in this process against the PyTorch reference (bench.py through
    /// <paramref name="python"/>; none with <paramref name="noReference"/>) on <paramref name="config"/>. The reference
    /// starts first (build, warm-up, its thread timing), then each workload is timed here and at once there, so that
    /// both sides of a ratio see the same load from other work on the machine.</summary>
    public static BenchComparison Measure(VitConfig config, int batch, int steps, int rounds, int threads, bool bf16, bool noReference,
        string python, Action<string> log, CancellationToken cancel = default)
    {
        if (batch < 1 || steps < 1 || rounds < 1 || threads < 0) throw new ArgumentException("--batch, --steps and --rounds must be at least 1, --threads at least 0");
        if (!noReference) ReferenceBench.ConfigJson(config); // refuse a shape the reference cannot build before timing anything
        if (threads > 0) Training.ThreadBudget.Pin(threads);
        var methods = bf16 ? BenchMode.WithBf16(TorchSharpBench.Methods) : TorchSharpBench.Methods;
        log($"peft bench: {config.Name} (dim {config.EmbedDim}, depth {config.Depth}, {config.NumHeads} heads, {config.ImageSize} px, patch {config.PatchSize}), " +
            $"batch {batch}, {steps} timed steps x {rounds} rounds (best kept), AdamW lr 1e-3 wd 1e-4, default options; {Environment.ProcessorCount} CPUs");
        ReferenceSession? session = null;
        if (!noReference)
        {
            log($"PyTorch reference ({python}): build and warm-up");
            session = ReferenceSession.Start(python, ReferenceBench.FindScript(), config, methods, batch, steps, threads, line => log("  " + line), cancel);
        }
        using (session)
        {
            log($"TorchSharp ({TorchSharp.torch.get_num_threads()} torch threads): build and warm-up, then rounds" +
                (session is { Problem: null } ? ", each workload timed here and then at once in PyTorch" : ""));
            var ours = TorchSharpBench.Run(config, methods, batch, steps, rounds, line => log("  " + line), session);
            return new BenchComparison(ours, session?.Finish());
        }
    }

    /// <summary>What `peft bench` prints after the rounds: the table, the best-mode table (with --bf16), the warnings.</summary>
    public IEnumerable<string> Report()
    {
        yield return "";
        yield return Table().TrimEnd('\n');
        if (BestModeTable() is { Length: > 0 } best) { yield return ""; yield return best.TrimEnd('\n'); }
        foreach (var w in Warnings()) yield return "!! " + w;
    }

    /// <summary>The figures as JSON (`peft bench --json FILE`).</summary>
    public string ToJson()
    {
        static JsonObject Side(BenchFigures f) => new()
        {
            ["side"] = f.Side, ["version"] = f.Version, ["threads"] = f.Threads, ["blas"] = f.Blas, ["peak_rss_bytes"] = f.PeakRssBytes,
        };
        var root = new JsonObject
        {
            ["torchsharp"] = Side(Ours),
            ["pytorch"] = Reference is null ? null : Side(Reference),
            ["reference_problem"] = ReferenceProblem,
            ["notes"] = new JsonArray(Notes.Select(n => (JsonNode)JsonValue.Create(n)!).ToArray()),
            ["rows"] = new JsonArray(Rows.Select(r => (JsonNode)new JsonObject
            {
                ["name"] = r.Name, ["torchsharp_images_per_second"] = r.Ours, ["pytorch_images_per_second"] = r.Reference,
                ["ratio"] = r.Ratio, ["target"] = r.Target, ["meets_target"] = r.MeetsTarget,
                ["torchsharp_trainable_excl_head"] = r.OursTrainable, ["pytorch_trainable_excl_head"] = r.ReferenceTrainable,
                ["counts_agree"] = Reference is null ? null : r.CountsAgree,
            }).ToArray()),
            ["peak_rss_ratio"] = RssRatio, ["peak_rss_target"] = RssTarget,
            ["count_mismatches"] = new JsonArray(CountMismatches.Select(m => (JsonNode)JsonValue.Create(m)!).ToArray()),
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    static string N(long? v) => v is long n ? n.ToString("N0", CultureInfo.InvariantCulture) : "-";
    static string F0(double? v) => v is double d ? d.ToString("F0", CultureInfo.InvariantCulture) : "-";
    static string F2(double? v) => v is double d ? d.ToString("F2", CultureInfo.InvariantCulture) + "x" : "-";
    static string Mb(long bytes) => (bytes / 1e6).ToString("F0", CultureInfo.InvariantCulture);
    static string Verdict(bool? met, string target) => met switch { true => $"{target} met", false => $"{target} MISSED", null => target };
}
