using System.Diagnostics;
using PeftWorkbench.Bench;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Tests.Bench;

/// <summary>`peft bench`: reading the reference's JSON, the ratio table, the trainable-count check, and (with
/// Debian's python3-torch, which environment/apt-packages.txt installs) that bench.py trains exactly the
/// parameters our methods train: the check that makes the comparison fair.</summary>
public class BenchComparisonTests
{
    const string Canned = """
        {
         "side": "pytorch", "torch": "1.13.0a0", "python": "3.11.2",
         "threads": {"train": 1, "inference": 2},
         "threads_measured": {"full": {"1": 80.0, "2": 70.0}, "inference": {"1": 250.0, "2": 260.0}},
         "blas": {"libraries": ["/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"],
                  "openblas": "OpenBLAS 0.3.21 DYNAMIC_ARCH", "openblas_core": "Cooperlake", "openblas_threads": 2},
         "config": {}, "batch": 64, "steps": 10, "rounds": 3,
         "rows": [
          {"name": "inference", "images_per_second": 200.0, "trainable_excl_head": null},
          {"name": "full", "images_per_second": 80.0, "trainable_excl_head": 1000},
          {"name": "lora", "images_per_second": 100.0, "trainable_excl_head": 48}
         ],
         "peak_rss_bytes": 1000000000
        }
        """;

    static BenchFigures Ours(long loraCount = 48) => new()
    {
        Side = "torchsharp", PeakRssBytes = 1_300_000_000, Version = "TorchSharp 0.107.0", Threads = "2 torch threads",
        Rows = new[] { new BenchRow("inference", 300, null), new BenchRow("full", 76, 1000), new BenchRow("lora", 120, loraCount) },
    };

    [Fact]
    public void ParsesTheReferenceJsonAndComputesRatiosAgainstTheTargets()
    {
        var reference = ReferenceBench.Parse(Canned);
        Assert.Null(reference.Problem);
        var f = reference.Figures!;
        Assert.Equal("PyTorch 1.13.0a0", f.Version);
        Assert.Equal(1_000_000_000, f.PeakRssBytes);
        Assert.True(f.FastBlas);
        Assert.Contains("Cooperlake", f.Blas);
        Assert.Contains("1 torch thread(s) for training, 2 for inference", f.Threads);
        Assert.Equal(new long?[] { null, 1000, 48 }, f.Rows.Select(r => r.TrainableExclHead));

        var c = new BenchComparison(Ours(), reference);
        var rows = c.Rows.ToDictionary(r => r.Name);
        Assert.Equal(1.5, rows["inference"].Ratio!.Value, 6);
        Assert.Equal(BenchComparison.InferenceTarget, rows["inference"].Target);
        Assert.True(rows["inference"].MeetsTarget);
        Assert.Equal(0.95, rows["full"].Ratio!.Value, 6);
        Assert.False(rows["full"].MeetsTarget);
        Assert.Equal(1.2, rows["lora"].Ratio!.Value, 6);
        Assert.True(rows["lora"].MeetsTarget);
        Assert.Equal(1.3, c.RssRatio!.Value, 6);
        Assert.Empty(c.CountMismatches);
        Assert.Empty(c.Warnings());

        var table = c.Table();
        Assert.Contains("| inference | - | 300 | 200 | 1.50x | >= 1.3 met |", table);
        Assert.Contains("| full step | 1,000 | 76 | 80 | 0.95x | >= 1.0 MISSED |", table);
        Assert.Contains("| lora step | 48 | 120 | 100 | 1.20x | >= 1.0 met |", table);
        Assert.Contains("| peak RSS (MB) | | 1300 | 1000 | 1.30x | <= 1.2 MISSED |", table);
        Assert.Contains("trainable-parameter counts agree on all 2 methods", table);

        var json = System.Text.Json.Nodes.JsonNode.Parse(c.ToJson())!;
        Assert.Equal(1.2, (double)json["rows"]![2]!["ratio"]!, 6);
        Assert.Empty(json["count_mismatches"]!.AsArray());
    }

    [Fact]
    public void ATrainableCountMismatchIsReportedLoudly()
    {
        var c = new BenchComparison(Ours(loraCount: 72), ReferenceBench.Parse(Canned));
        var mismatch = Assert.Single(c.CountMismatches);
        Assert.Contains("lora: TorchSharp trains 72 parameters (head excluded), PyTorch 48", mismatch);
        Assert.Contains(c.Warnings(), w => w.StartsWith("UNFAIR COMPARISON") && w.Contains("lora"));
        Assert.Contains("| lora step | 72 vs 48 MISMATCH |", c.Table());
        Assert.Contains("trainable-parameter counts DIFFER on 1 row(s)", c.Table());
    }

    [Fact]
    public void ARowTheReferenceLacksCountsAsAMismatch()
    {
        var ours = Ours() with { Rows = Ours().Rows.Append(new BenchRow("bitfit", 150, 20)).ToList() };
        var c = new BenchComparison(ours, ReferenceBench.Parse(Canned));
        Assert.Contains("bitfit: the PyTorch reference has no such row", Assert.Single(c.CountMismatches));
    }

    [Fact]
    public void TorchMissingGivesOneLineSayingHowToInstallIt_AndOursStillPrints()
    {
        var r = ReferenceBench.Parse("""{"error": "PyTorch is not importable by /usr/bin/python3: No module named 'torch'", "install": "bash environment/reference/setup.sh"}""");
        Assert.Null(r.Figures);
        Assert.Contains("No module named 'torch'", r.Problem);
        Assert.Contains("bash environment/reference/setup.sh", r.Problem);
        var c = new BenchComparison(Ours(), r);
        Assert.Equal(r.Problem, Assert.Single(c.Warnings()));
        Assert.Contains("| lora step | 48 | 120 |", c.Table());
        Assert.Empty(c.CountMismatches);
    }

    [Fact]
    public void AMissingPythonGivesTheInstallLine()
    {
        var r = ReferenceBench.Run("/nonexistent/python3", ReferenceBench.FindScript(), TinyConfig, new[] { "lora" }, 2, 1, 1, 1);
        Assert.Null(r.Figures);
        Assert.Contains("cannot start /nonexistent/python3", r.Problem);
        Assert.Contains(ReferenceBench.InstallHint, r.Problem);
    }

    [Fact]
    public void ANetlibBlasReferenceIsFlaggedAsUnfair()
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(Canned)!.AsObject();
        json["blas"] = new System.Text.Json.Nodes.JsonObject { ["libraries"] = new System.Text.Json.Nodes.JsonArray("/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0") };
        var netlib = json.ToJsonString();
        var f = ReferenceBench.Parse(netlib).Figures!;
        Assert.False(f.FastBlas);
        Assert.Contains(new BenchComparison(Ours(), ReferenceBench.Parse(netlib)).Warnings(), w => w.Contains("slow reference BLAS"));
    }

    [Fact]
    public void TheReferenceGetsOurShapeAndOurDefaultOptions()
    {
        var config = System.Text.Json.Nodes.JsonNode.Parse(ReferenceBench.ConfigJson(VitConfig.Preset("mini")))!;
        Assert.Equal(128, (int)config["embed_dim"]!);
        Assert.Equal(512, (int)config["mlp_hidden"]!);
        Assert.Equal(1e-6, (double)config["ln_eps"]!);
        var options = System.Text.Json.Nodes.JsonNode.Parse(ReferenceBench.OptionsJson(TorchSharpBench.Methods, VitConfig.Preset("mini")))!;
        Assert.Equal(8, (double)options["lora"]!["lora_bottleneck"]!);
        Assert.Equal(0.1, (double)options["lora"]!["lora_dropout"]!);
        Assert.Equal(64, (double)options["rand_h_adapter"]!["adapter_bottleneck"]!);
        Assert.Equal(10, (double)options["vpt_deep"]!["vpt_num"]!);
        Assert.Throws<ArgumentException>(() => ReferenceBench.ConfigJson(VitConfig.Preset("clip-vit-b16")));
    }

    /// <summary>Small enough for seconds on both sides, large enough for every default (Houlsby's bottleneck 64, VPT's 10 prompts).</summary>
    static readonly VitConfig TinyConfig = new()
    {
        Name = "bench-tiny", ImageSize = 16, PatchSize = 8, EmbedDim = 64, Depth = 2, NumHeads = 2, NumClasses = 10,
    };

    [Fact]
    public void BenchPyTrainsExactlyTheParametersOurMethodsTrain()
    {
        var probe = Process.Start(new ProcessStartInfo(ReferenceBench.DefaultPython, "-c \"import torch\"")
            { UseShellExecute = false, RedirectStandardError = true })!;
        string err = probe.StandardError.ReadToEnd();
        probe.WaitForExit();
        // Not a skip: CI installs python3-torch (environment/apt-packages.txt), so a missing torch is a broken setup.
        Assert.True(probe.ExitCode == 0, $"{ReferenceBench.DefaultPython} cannot import torch ({err.Trim()}): run `bash environment/setup.sh` " +
            $"(or `{ReferenceBench.InstallHint}`) to install python3-torch and libopenblas0-pthread");

        var methods = TorchSharpBench.Methods;
        var ours = TorchSharpBench.Run(TinyConfig, methods, batch: 4, steps: 1, rounds: 1);
        var log = new List<string>();
        var reference = ReferenceBench.Run(ReferenceBench.DefaultPython, ReferenceBench.FindScript(), TinyConfig, methods, 4, 1, 1, threads: 1, log.Add);
        Assert.True(reference.Figures is not null, reference.Problem + "\n" + string.Join("\n", log));
        var c = new BenchComparison(ours, reference);
        Assert.Empty(c.CountMismatches);
        Assert.Equal(new[] { "inference" }.Concat(methods), reference.Figures!.Rows.Select(r => r.Name));
        Assert.All(c.Rows, r => Assert.True(r.Reference > 0, $"{r.Name}: no PyTorch figure"));
        // The counts are the methods' own, not two sides agreeing on nothing: LoRA = depth x (d r + r 3d), r 8.
        Assert.Equal(2 * (64 * 8 + 8 * 192), ours.Row("lora")!.TrainableExclHead);
        // The reference's own peak, not the .NET parent's: getrusage's ru_maxrss carries the parent's over exec.
        Assert.NotEqual(ours.PeakRssBytes, reference.Figures.PeakRssBytes);
        Assert.True(reference.Figures.FastBlas, $"the reference runs on a slow BLAS ({reference.Figures.Blas}): install libopenblas0-pthread");
    }
}
