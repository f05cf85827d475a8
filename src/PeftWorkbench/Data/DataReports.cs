using PeftWorkbench.Training;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Data;

/// <summary>
/// What `peft data` prints, as lines (the CLI only writes them out): the suite's task table, the checkpoint's zero-shot
/// digit accuracy, and the transfer probe table with the shipping rule. Each is an iterator: a line comes as soon as
/// its task is measured, and bad input fails on the first line, before any measuring.
/// </summary>
public static class DataReports
{
    /// <summary>The probe's fixed settings (a linear head on frozen features, as the study's linear probing).</summary>
    public static TrainOptions ProbeOptions => new() { Epochs = 100, WarmupEpochs = 10, BatchSize = 64, Lr = 1e-2, WeightDecay = 1e-4, Seed = 42 };

    /// <summary>The MNIST shift sets the zero-shot report measures beside MNIST's test split.</summary>
    public static readonly IReadOnlyList<string> ZeroShotShifts = new[] { "digits", "gaussian_noise-3", "gaussian_blur-3", "contrast-3" };

    /// <summary>Every task with its group, classes, split sizes, many-shot size, shift sets and source.</summary>
    public static IEnumerable<string> List(Suite suite)
    {
        yield return $"suite: {suite.Name}";
        yield return $"{"task",-15} {"group",-12} {"classes",7} {"train800",8} {"val200",6} {"tr800val200",11} {"test",6} {"many-shot",9}  shifts  source";
        foreach (var t in suite.Tasks)
            yield return $"{t.Name,-15} {t.Group,-12} {t.NumClasses,7} {t.Train800,8} {t.Val200,6} {t.Train800Val200,11} {t.Test,6} {(t.ManyShotTrain > 0 ? t.ManyShotTrain.ToString() : "-"),9}  {t.Shifts.Count,6}  {t.Source}";
        if (suite is MiniSuite m)
            yield return $"cache: {m.CacheDir}; shift sets: {string.Join(", ", Corruptions.Names)} at severities 1, 3, 5; real sources: mnist<->digits";
    }

    /// <summary>A backbone's zero-shot digit top-1 (head outputs 0-9) on MNIST test and <see cref="ZeroShotShifts"/>:
    /// a shipped name (default <see cref="Workbench.DefaultBackbone"/>) or a file, as <see cref="Backbones.Load"/> reads it.</summary>
    public static IEnumerable<string> ZeroShotDigits(MiniSuite suite, string backbone = Workbench.DefaultBackbone)
    {
        using var model = Backbones.Load(backbone);
        yield return $"backbone {backbone}";
        using (var test = suite.LoadSplit("mnist", "test"))
            yield return $"mnist/test ({test.Count} images): zero-shot top-1 {ZeroShot.DigitAccuracy(model, test):F2} %";
        foreach (var shift in ZeroShotShifts)
        {
            using var set = suite.LoadShift("mnist", shift);
            yield return $"mnist shift {shift} ({set.Count} images): zero-shot top-1 {ZeroShot.DigitAccuracy(model, set):F2} %";
        }
    }

    /// <summary>
    /// A markdown table of linear probes (logistic and ridge, train800val200 -> test) per task of <paramref name="groups"/>:
    /// <paramref name="backbone"/> (see <see cref="Backbones.Load"/>) against a randomly initialised ViT of its shape.
    /// Any backbone but "mini" is also compared with the shipped mini, and the shipping rule's verdict follows the table.
    /// </summary>
    public static IEnumerable<string> Probe(MiniSuite suite, string backbone, IReadOnlyCollection<string> groups)
    {
        bool compare = backbone != "mini";
        var options = ProbeOptions;
        using (Backbones.Load(backbone)) { } // a bad backbone fails before any probing
        yield return compare
            ? $"| task | group | {backbone}: logistic | mini: logistic | random init: logistic | {backbone}: ridge | mini: ridge | random init: ridge |\n|---|---|---|---|---|---|---|---|"
            : "| task | group | pre-trained: logistic | random init: logistic | pre-trained: ridge | random init: ridge |\n|---|---|---|---|---|---|";
        var rows = new List<ProbeRow>();
        foreach (var t in suite.Tasks.Where(t => groups.Contains(t.Group)))
        {
            using var train = suite.LoadSplit(t.Name, "train800val200");
            using var test = suite.LoadSplit(t.Name, "test");
            using var pre = Backbones.Load(backbone);
            using var rand = new VisionTransformer(pre.Config, seed: 0);
            var (lp, rp) = TransferProbe.Both(pre, train, test, options);
            var (lr, rr) = TransferProbe.Both(rand, train, test, options);
            if (!compare) { yield return $"| {t.Name} | {t.Group} | {lp:F1} | {lr:F1} | {rp:F1} | {rr:F1} |"; continue; }
            using var mini = VisionTransformer.Pretrained("mini");
            var (ml, mr) = TransferProbe.Both(mini, train, test, options);
            yield return $"| {t.Name} | {t.Group} | {lp:F1} | {ml:F1} | {lr:F1} | {rp:F1} | {mr:F1} | {rr:F1} |";
            rows.Add(new ProbeRow(t.Name, lp, ml, lr));
        }
        if (!compare) yield break;
        using var model = Backbones.Load(backbone);
        double? zeroShot;
        using (var mnist = suite.LoadSplit("mnist", "test"))
            zeroShot = model.Config.NumClasses >= 10 ? ZeroShot.DigitAccuracy(model, mnist) : null;
        var (ships, reasons) = Backbones.ShippingRule(rows, zeroShot);
        yield return $"shipping rule (Pretrained/README.md): {(ships ? "PASSES" : "fails")}";
        foreach (var line in reasons) yield return $"  {line}";
    }
}
