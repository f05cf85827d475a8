using System.Text.RegularExpressions;
using Newtonsoft.Json.Linq;
using PeftWorkbench.Analysis;
using PeftWorkbench.Plots;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using XPlot.Plotly;

namespace PeftWorkbench.Tests.Analysis;

/// <summary>The playground's pieces: sensitivity curves (ours and the paper's), the sentences computed from them, the
/// sensitivity chart, and the live training curves.</summary>
public class SensitivityTests
{
    static TrialRecord Trial(string rank, double lr, double top1, string status = "ok") => new()
    {
        Key = $"k-{rank}-{lr}", Status = status, Top1Last = status == "ok" ? top1 : null,
        Config = new TrialConfig
        {
            Task = "t", Method = "lora", Phase = "tune", Lr = lr, WeightDecay = 1e-4, Profile = "smoke", Protocol = "vtab1k", Seed = 42,
            Hp = new SortedDictionary<string, string>(StringComparer.Ordinal) { ["lora_bottleneck"] = rank },
        },
    };

    static readonly TrialRecord[] Grid =
    {
        Trial("1", 1e-3, 60), Trial("1", 1e-2, 70), Trial("8", 1e-3, 62), Trial("8", 1e-2, 71), Trial("8", 3e-2, 80, "diverged"),
        Trial("32", 1e-3, 64), Trial("32", 3e-2, 50),
    };

    [Fact]
    public void OurCurvesTakeTheBestOverTheOtherAxesAndSkipAxesWithOneValue()
    {
        var curve = Sensitivity.FromTrials(Grid);
        Assert.Equal(new[] { ("lora_bottleneck", "1", 70.0), ("lora_bottleneck", "8", 71.0), ("lora_bottleneck", "32", 64.0),
                             ("lr", "0.001", 64.0), ("lr", "0.01", 71.0), ("lr", "0.03", 50.0) },
            curve.Select(p => (p.Axis, p.Value, p.Top1)));  // wd has one value; the diverged trial is left out
    }

    [Fact]
    public void ThePapersCurvesAreTheBestPerTaskAveragedOverTheGroup()
    {
        // Computed independently from shared/paper/vtab1k_tuning_grid.csv (Python: per task the max val200 at each value, then the mean).
        var all = Sensitivity.FromPaper("lora");
        Assert.Equal(73.684, all.Single(p => p.Axis == "lr" && p.Value == "0.001").Top1, 3);
        Assert.Equal(71.763, all.Single(p => p.Axis == "lr" && p.Value == "0.01").Top1, 3);
        Assert.All(all, p => Assert.Equal(19, p.Tasks));
        var structured = Sensitivity.FromPaper("lora", "structured");
        Assert.Equal(new[] { "1", "8", "16", "32" }, structured.Where(p => p.Axis == "lora_bottleneck").Select(p => p.Value));
        Assert.Equal(59.6875, structured.Single(p => p.Axis == "lora_bottleneck" && p.Value == "8").Top1, 4);
        Assert.Equal(60.1875, structured.Single(p => p.Axis == "wd" && p.Value == "0.001").Top1, 4);
        Assert.All(structured, p => Assert.Equal(8, p.Tasks));
        Assert.Contains("no rows for method 'lora' in group 'nowhere'", Assert.Throws<ArgumentException>(() => Sensitivity.FromPaper("lora", "nowhere")).Message);
        // Booleans in the study's Python dicts parse too.
        Assert.Equal(new[] { "false", "true" }, Sensitivity.FromPaper("convpass").Where(p => p.Axis == "convpass_xavier_init").Select(p => p.Value));
    }

    [Fact]
    public void TheSentencesSayWhetherTheBestValueAndTheFlatnessAgree()
    {
        var ours = Sensitivity.FromTrials(Grid);
        var paper = Sensitivity.FromPaper("lora", "structured");
        var said = Sensitivity.Compare(ours, paper).ToList();
        Assert.Contains("lr: our best is 0.01 (val 71.0 %), the paper's best is 0.001 (mean val 60.7 % over 8 tasks) -> a different value.", said);
        Assert.Contains("lr: over the values both tried (0.001, 0.01) ours moves 7.0 points, the paper's 3.8 -> ours is steeper than the paper's.", said);
        Assert.Contains("lora_bottleneck: our best is 8 (val 71.0 %), the paper's best is 8 (mean val 59.7 % over 8 tasks) -> the same value.", said);
        Assert.Contains("lora_bottleneck: over the values both tried (1, 8, 32) ours moves 7.0 points, the paper's 1.4 -> ours is steeper than the paper's.", said);
        var df = Sensitivity.Beside(ours, paper);
        Assert.Equal(new[] { "1", "8", "16", "32", "0.001", "0.01", "0.03" }, df["value"].Cast<string>());
        Assert.Null(df["ours"][2]); // we did not try rank 16
        Assert.Null(df["paper"][6]); // the paper did not try lr 0.03
    }

    [Fact]
    public void TheClaimsJudgeTheBestValueAmongThoseBothTried()
    {
        var ours = Sensitivity.FromTrials(Grid);
        var paper = Sensitivity.FromPaper("lora", "structured");
        var claims = Sensitivity.Claims(ours, paper, PeftWorkbench.Findings.BudgetReading.Unchecked);
        // lr: ours prefers 0.01 (71.0), the study 0.001 (60.7) -> disagrees; rank: 8 on both sides -> agrees.
        var lr = Assert.Single(claims, c => c.What.StartsWith("lr:", StringComparison.Ordinal));
        Assert.Equal(("lr: the best of 0.001, 0.01", PeftWorkbench.Findings.Verdict.Disagrees, "ours 0.01, the study's 0.001"), (lr.What, lr.Verdict, lr.Note));
        Assert.Equal((71.0, 60.7), (lr.Ours!.Value, Math.Round(lr.Paper!.Value, 1)));
        var rank = Assert.Single(claims, c => c.What.StartsWith("lora_bottleneck:", StringComparison.Ordinal));
        Assert.Equal(("lora_bottleneck: the best of 1, 8, 32", PeftWorkbench.Findings.Verdict.Agrees), (rank.What, rank.Verdict));
        // On a run the diagnostics do not vouch for, the disagreement is inconclusive.
        var untrusted = Sensitivity.Claims(ours, paper, new PeftWorkbench.Findings.BudgetReading(false, "1 of 1 finals had not settled"));
        Assert.Equal(PeftWorkbench.Findings.Verdict.Inconclusive, untrusted.Single(c => c.What.StartsWith("lr:", StringComparison.Ordinal)).Verdict);
    }

    [Fact]
    public void TheSensitivityChartPutsOursBesideThePapersOnALogAxis()
    {
        var js = Charts.Sensitivity(Sensitivity.FromTrials(Grid), Sensitivity.FromPaper("lora"), "lr").GetInlineJS();
        var m = Regex.Match(js, @"var data = (.*?);\s*var layout = (.*?);\s*Plotly", RegexOptions.Singleline);
        var (data, layout) = (JArray.Parse(m.Groups[1].Value), JObject.Parse(m.Groups[2].Value));
        Assert.Equal(new[] { "ours (mini suite)", "paper (VTAB-1K, mean over 19 tasks)" }, data.Select(t => (string)t["name"]!));
        Assert.Equal(new[] { 0.001, 0.01, 0.03 }, data[0]["x"]!.Select(x => (double)x));
        Assert.Equal(("log", "lr", "val200 top-1 (%)"), ((string)layout["xaxis"]!["type"]!, (string)layout["xaxis"]!["title"]!, (string)layout["yaxis"]!["title"]!));
        Assert.Contains("Sensitivity to lr", (string)layout["title"]!);
    }

    static TrainProgress Step(int epoch, int step, double loss, string phase = "train", double? top1 = null) =>
        new(phase, epoch, 2, step, 2, epoch * 2 + step, 4, loss, 1e-3, 100, top1, 1);

    [Fact]
    public void TrainingCurvesKeepOnePointPerEpochAndRedrawThrottledAndAtEachEnd()
    {
        var drawn = new List<object>();
        var curves = new TrainingCurves("loss", TimeSpan.FromHours(1)) { Redraw = drawn.Add };
        var config = Trial("8", 1e-2, 0).Config;
        var tune = curves.For(config);
        Assert.Equal("lora_bottleneck=8 lr=0.01 wd=0.0001", TrainingCurves.Label(config));
        tune.Report(Step(0, 1, 2.0)); // the first report draws; the hour-long interval holds back the rest until the end
        Assert.Equal((0.5, 2.0), Assert.Single(curves.Lines()[0].Points));
        tune.Report(Step(0, 2, 1.8));
        tune.Report(Step(1, 1, 1.2));
        tune.Report(Step(1, 2, 1.0));
        tune.Report(Step(1, 2, 1.0, "done", 75));
        var line = Assert.Single(curves.Lines());
        Assert.Equal("lora_bottleneck=8 lr=0.01 wd=0.0001: val 75.0 %", line.Name);
        Assert.Equal(new[] { (1.0, 1.8), (2.0, 1.0) }, line.Points.Skip(0).Where(p => p.Epoch % 1 == 0));
        Assert.Equal(2, line.Points.Count); // the running tip became the epoch's point
        Assert.Equal(2, drawn.Count);
        Assert.Contains("val 75.0 %", ((PlotlyChart)drawn[^1]).GetInlineJS());
        Assert.DoesNotContain("null", ((PlotlyChart)drawn[^1]).GetInlineJS()); // a "line": null stops plotly.js drawing the chart

        var final = curves.For(config with { Phase = "final" });
        final.Report(Step(0, 1, double.NaN));
        final.Report(Step(0, 1, double.NaN, "diverged"));
        Assert.Equal(("final: lora_bottleneck=8 lr=0.01 wd=0.0001: diverged", 0), (curves.Lines()[1].Name, curves.Lines()[1].Points.Count));
        Assert.Equal(3, drawn.Count); // the end of a trial always draws
    }
}
