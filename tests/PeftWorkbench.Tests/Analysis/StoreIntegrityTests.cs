using Microsoft.Data.Analysis;
using PeftWorkbench.Analysis;
using PeftWorkbench.Tests.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using TorchSharp;

namespace PeftWorkbench.Tests.Analysis;

/// <summary>Issue 26: what a store holds never silently bends an analysis (non-finite logits are refused naming the
/// file), never writes outside the report folder (names from a store are not paths), and a partial store gives what
/// it can with a note for the rest.</summary>
public class StoreIntegrityTests
{
    static void Fill(ResultsStore store, string task, IEnumerable<string> methods, Func<string, float>? poison = null, long seed = 42, double top1 = 50)
    {
        var gen = new torch.Generator(5);
        foreach (var method in methods)
            foreach (var phase in new[] { "tune", "final" })
            {
                var c = new TrialConfig { Task = task, Method = method, Phase = phase, Lr = 0.01, Seed = seed };
                int n = phase == "tune" ? 20 : 40;
                using var logits = torch.randn(new long[] { n, 10 }, generator: gen);
                if (poison?.Invoke(method) is float bad && phase == "final") logits.fill_(bad);
                using var labels = torch.arange(n, torch.int64) % 10;
                using var eval = new EvalResult(0, logits.clone(), labels.clone());
                store.Append(new TrialRecord { Key = c.Key, Config = c, Top1Last = top1 + method.Length, Predictions = store.SavePredictions(c.Key, eval) });
            }
    }

    [Fact]
    public void NonFiniteLogitsAreRefusedNamingTheFile()
    {
        foreach (var bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            var e = Assert.Throws<ArgumentException>(() => MethodPredictions.FromArrays("lora", "t", new float[,] { { 1, 2 }, { bad, 0 } }, new long[] { 0, 1 }));
            Assert.Contains("sample 1, class 0 is not finite (1 of 4 are not)", e.Message);
        }
        using var dir = new TempDir();
        var store = new ResultsStore(dir.Path);
        Fill(store, "mnist", new[] { "lora", "ssf" }, m => m == "lora" ? float.NaN : 1f);
        // Poisoned only where asked: ssf's logits are all 1 (finite).
        var e2 = Assert.Throws<ArgumentException>(() => Predictions.Load(dir.Path, "mnist"));
        Assert.Contains(Path.Combine(dir.Path, "predictions"), e2.Message);
        Assert.Contains("lora on mnist (test)", e2.Message);
    }

    [Fact]
    public void AnalyzeWritesOnlyInsideItsFolderAndSkipsWhatAPartialStoreCannotDraw()
    {
        using var dir = new TempDir();
        var store = new ResultsStore(Path.Combine(dir.Path, "store"));
        Fill(store, "../../escaped", new[] { "linear", "lora" });
        Fill(store, "/tmp/abs-" + Guid.NewGuid().ToString("N")[..8], new[] { "linear", "lora" });
        Fill(store, "mnist", new[] { "lora", "ssf" }, m => m == "ssf" ? float.NaN : 0f);
        var outDir = Path.Combine(dir.Path, "a", "b", "out");
        var before = Directory.EnumerateFileSystemEntries(dir.Path, "*", SearchOption.AllDirectories).ToHashSet();
        var lines = new List<string>();
        StoreReport.Run(new StoreReportOptions { StoreDir = store.Dir, OutDir = outDir }, lines.Add);

        var after = Directory.EnumerateFileSystemEntries(dir.Path, "*", SearchOption.AllDirectories).Where(p => !before.Contains(p)).ToList();
        Assert.All(after, p => Assert.True(p.StartsWith(Path.Combine(dir.Path, "a")) , p));
        Assert.All(after.Where(File.Exists), p => Assert.Equal(outDir, Path.GetDirectoryName(p)));
        Assert.Contains(Directory.GetFiles(outDir), f => Path.GetFileName(f).StartsWith("_._.._escaped-identical-", StringComparison.Ordinal));
        // Two PEFT methods: no Venn of 3, with a note; agreement still written. The NaN task is skipped naming its file.
        Assert.Contains(lines, l => l.Contains("Venn of 3 methods (the store has 1 PEFT method(s)"));
        Assert.True(lines.Any(l => l.StartsWith("\nskipped task mnist:") && l.Contains("not finite") && l.Contains("predictions")), string.Join("|", lines.Where(l => l.Contains("skipped") || l.Contains("mnist"))));
        Assert.True(File.Exists(Path.Combine(outDir, "figure1a-paper.html")));
    }

    [Fact]
    public void AnalyzeOfAStoreWithTwoSeedsAnalysesOneSeedAndSaysWhichOrTheOneAsked()
    {
        using var dir = new TempDir();
        var store = new ResultsStore(Path.Combine(dir.Path, "store"));
        var methods = new[] { "linear", "lora", "ssf", "bitfit", "full" };
        Fill(store, "mnist", methods, seed: 1, top1: 50);
        Fill(store, "mnist", methods, seed: 2, top1: 70);
        Fill(store, "svhn", methods, seed: 2, top1: 70); // seed 2 has the most finals: 10 against 5

        DataFrameRow LoraOnMnist(string outDir) => DataFrame.LoadCsv(Path.Combine(outDir, "ranks-per-task.csv")).Rows
            .Single(r => (string)r[0] == "mnist" && (string)r[2] == "lora");
        var lines = new List<string>();
        var chosen = Path.Combine(dir.Path, "chosen");
        StoreReport.Run(new StoreReportOptions { StoreDir = store.Dir, OutDir = chosen }, lines.Add);
        Assert.Contains(lines, l => l.Contains("the store holds 2 seeds: 2 (10 finals), 1 (5 finals); analysing seed 2 (the most finals); pass --seed to choose another."));
        Assert.DoesNotContain(lines, l => l.Contains("skipped"));
        Assert.True(File.Exists(Path.Combine(chosen, "mnist-identical.csv")) && File.Exists(Path.Combine(chosen, "svhn-identical.csv")));
        Assert.Equal(74.0, Convert.ToDouble(LoraOnMnist(chosen)[3]), 3); // seed 2's top-1 (70 + 4)

        lines.Clear();
        var asked = Path.Combine(dir.Path, "asked");
        StoreReport.Run(new StoreReportOptions { StoreDir = store.Dir, OutDir = asked, Seed = 1 }, lines.Add);
        Assert.DoesNotContain(lines, l => l.Contains("analysing seed") || l.Contains("skipped"));
        Assert.Equal(54.0, Convert.ToDouble(LoraOnMnist(asked)[3]), 3); // seed 1's
        Assert.False(File.Exists(Path.Combine(asked, "svhn-identical.csv")));     // svhn has no seed-1 finals

        var e = Assert.Throws<ArgumentException>(() => StoreReport.Run(new StoreReportOptions { StoreDir = store.Dir, OutDir = asked, Seed = 3 }, lines.Add));
        Assert.Contains("no successful final trial with seed 3; seeds there: 2 (10 finals), 1 (5 finals).", e.Message);
    }
}
