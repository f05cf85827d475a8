using PeftWorkbench.Analysis;
using PeftWorkbench.Tests.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Analysis;

public class StoreAndPaperTests
{
    static TrialConfig Config(string method, string phase) => new() { Task = "t", Method = method, Phase = phase, Lr = 0.01, WeightDecay = 1e-4, DropPath = 0.1 };

    /// <summary>A store with finals (test logits) and their selected tune trials (val logits) for A and B; C's final has no predictions.</summary>
    static void Fill(ResultsStore store)
    {
        foreach (var (method, shift) in new[] { ("A", 0f), ("B", 1f) })
            foreach (var phase in new[] { "tune", "final" })
            {
                var c = Config(method, phase);
                int n = phase == "tune" ? 4 : 6;
                using var logits = torch.arange(n * 3, torch.float32).reshape(n, 3) * (shift + 1) % 5;
                using var labels = torch.arange(n, torch.int64) % 3;
                using var eval = new EvalResult(50, logits.clone(), labels.clone());
                var rel = store.SavePredictions(c.Key, eval);
                store.Append(new TrialRecord { Key = c.Key, Config = c, Top1Last = 50, Predictions = rel });
            }
        var cf = Config("C", "final");
        store.Append(new TrialRecord { Key = cf.Key, Config = cf, Top1Last = 40 });
    }

    [Fact]
    public void Store_gives_finals_test_logits_and_the_selected_tunes_val_logits()
    {
        using var dir = new TempDir();
        var store = new ResultsStore(dir.Path);
        Fill(store);
        var test = Predictions.Load(dir.Path, "t", "test", new[] { "A", "B" });
        Assert.Equal(6, test.Count);
        Assert.Equal(new[] { "A", "B" }, test.Names);
        var val = Predictions.Load(dir.Path, "t", "val", new[] { "B", "A" });
        Assert.Equal(4, val.Count);
        Assert.Equal("val", val.Split);
        var e = Assert.Throws<ArgumentException>(() => Predictions.Load(dir.Path, "t"));
        Assert.Contains("'C' on task 't'", e.Message);
        Assert.Contains("trials.jsonl", e.Message);
        e = Assert.Throws<ArgumentException>(() => Predictions.Load(dir.Path, "t", methods: new[] { "A", "A" }));
        Assert.Contains("named twice", e.Message);
        e = Assert.Throws<ArgumentException>(() => Predictions.Load(dir.Path, "t", methods: new[] { "A", "Z" }));
        Assert.Contains("'Z'", e.Message);
        var scores = Ranks.FromStore(dir.Path);
        Assert.Equal(3, scores.Count);
    }

    [Fact]
    public void Runs_give_their_own_finals_and_selected_tunes()
    {
        using var dir = new TempDir();
        var store = new ResultsStore(dir.Path);
        Fill(store);
        var records = store.Records();
        TrialRecord R(string method, string phase) => records.Single(r => r.Config.Method == method && r.Config.Phase == phase);
        StudyRun Run(string method, string task = "t") => new(task, method, Profiles.Smoke, Profiles.Smoke.Vtab1k(), dir.Path,
            new[] { R(method, "tune") }, R(method, "tune"), R(method, "final"), null);
        var runs = new[] { Run("B"), Run("A") };
        var test = Predictions.FromRuns(runs, "t");
        Assert.Equal(new[] { "B", "A" }, test.Names); // the runs' order
        Assert.Equal(6, test.Count);
        Assert.Equal(Predictions.Load(dir.Path, "t", methods: new[] { "B" })["B"].Logits, test["B"].Logits);
        var val = Predictions.FromRuns(runs, "t", "val");
        Assert.Equal(("val", 4), (val.Split, val.Count));
        var e = Assert.Throws<ArgumentException>(() => Predictions.FromRuns(runs, "u"));
        Assert.Contains("task 'u'", e.Message);
        Assert.Contains("on t", e.Message);
    }

    [Fact]
    public void A_missing_predictions_file_is_named()
    {
        using var dir = new TempDir();
        var store = new ResultsStore(dir.Path);
        Fill(store);
        var rel = store.Records().First(r => r.Config.Method == "B" && r.Config.Phase == "final").Predictions!;
        File.Delete(Path.Combine(dir.Path, rel));
        // The store skips a record whose predictions file is gone; the loader names the skipped line and the file.
        var e = Assert.Throws<ArgumentException>(() => Predictions.Load(dir.Path, "t", methods: new[] { "A", "B" }));
        Assert.Contains($"predictions file {rel} is missing", e.Message);
        Assert.Contains("'B' on task 't'", e.Message);
        Assert.Throws<DirectoryNotFoundException>(() => Predictions.Load(Path.Combine(dir.Path, "nothing"), "t"));
    }

    [Fact]
    public void Paper_tables_have_the_published_rows_and_values()
    {
        var v = Paper.Vtab1k();
        Assert.Equal(304, v.Rows.Count);
        Assert.Equal("cifar", v["task"][0]); Assert.Equal("adaptformer", v["method"][0]);
        Assert.Equal(74.25, (double)v["top1_last"][0]!); Assert.Equal(304320L, (long)v["trainable_params"][0]!);
        Assert.Equal(9804, Paper.TuningGrid().Rows.Count);
        var many = Paper.ManyShot();
        Assert.Equal(183, many.Rows.Count);
        Assert.Equal("cifar100", many["dataset"][0]); Assert.Equal("adaptformer", many["method"][0]); Assert.Equal(85.13, (double)many["top1_last"][0]!);
        var clip = Paper.ClipRobustness();
        Assert.Equal(45, clip.Rows.Count);
        Assert.Equal(75.62, (double)clip["top1"][0]!);
        var wise = Paper.ClipWise();
        Assert.Equal(495, wise.Rows.Count);
        Assert.Equal(48.89, (double)wise["top1"][0]!);
        // The README's means over 19 tasks: ConvPass 74.2, Linear probe 55.9.
        var scores = Paper.Vtab1kScores();
        Assert.Equal(74.2, scores.Where(s => s.Method == "convpass").Average(s => s.Top1), 1);
        Assert.Equal(55.9, scores.Where(s => s.Method == "linear").Average(s => s.Top1), 1);
        Assert.Equal(19, GainOverLinear.Rows(scores).Count);
        var curves = Wise.PaperCurves();
        Assert.All(curves, c => Assert.Equal(11, c.Points.Count));
        Assert.All(curves, c => Assert.Equal(4, c.Points[0].Shifts.Count));
    }

    [Fact]
    public void Beside_puts_the_paper_mean_next_to_ours()
    {
        var ours = new[] { new Score("mnist", "natural", "lora", 90), new Score("cells", "specialized", "lora", 70) };
        var df = Paper.Beside(ours);
        var all = Enumerable.Range(0, (int)df.Rows.Count).Single(i => (string)df["group"][i] == "all");
        Assert.Equal(80.0, (double)df["ours"][all]!);
        Assert.Equal(72.9, (double)df["paper"][all]!, 1); // README: LoRA 72.9
    }
}

public class StoreReportTests
{
    [Fact]
    public void The_report_runs_every_store_analysis_and_writes_tables_and_charts()
    {
        using var dir = new TempDir();
        var store = new ResultsStore(Path.Combine(dir.Path, "store"));
        var gen = new Generator(11);
        foreach (var method in new[] { "linear", "full", "lora", "rand_h_adapter", "ssf" })
            foreach (var phase in new[] { "tune", "final" })
            {
                var c = new TrialConfig { Task = "mnist", Method = method, Phase = phase, Lr = 0.01 };
                int n = phase == "tune" ? 20 : 40;
                using var logits = torch.randn(new long[] { n, 10 }, generator: gen);
                using var labels = torch.arange(n, torch.int64) % 10;
                using var eval = new EvalResult(0, logits.clone(), labels.clone());
                store.Append(new TrialRecord { Key = c.Key, Config = c, Top1Last = 50 + method.Length, Predictions = store.SavePredictions(c.Key, eval) });
            }
        var lines = new List<string>();
        var timings = StoreReport.Run(new StoreReportOptions { StoreDir = store.Dir, OutDir = Path.Combine(dir.Path, "out") }, lines.Add);
        var files = Directory.GetFiles(Path.Combine(dir.Path, "out")).Select(Path.GetFileName).ToList();
        foreach (var f in new[] { "mnist-identical.csv", "mnist-venn3.csv", "mnist-identical-heatmap.html", "mnist-venn3.html", "mnist-upset4.html",
                     "ensembles.csv", "mean-rank.csv", "figure1a-ours.html", "figure1a-paper.html", "beside-paper.csv", "paper-robustness.html" })
            Assert.Contains(f, files);
        Assert.Contains(timings, t => t.Step.Contains("greedy ensembles"));
        Assert.Contains(lines, l => l.Contains("study_region")); // the trio is the study's: its counts sit beside ours
    }
}
