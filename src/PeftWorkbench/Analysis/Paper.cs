using System.Globalization;
using System.Text;
using Microsoft.Data.Analysis;

namespace PeftWorkbench.Analysis;

/// <summary>
/// The study's published numbers as tables (Mai et al., CVPR 2025; recomputed from the official repository
/// OSU-MLB/ViT_PEFT_Vision's tune_output; see Analysis/PaperData/README.md), embedded in the library, and helpers
/// that put the paper's number beside ours. Numbers are percentages as published; nullable columns.
/// </summary>
public static class Paper
{
    /// <summary>19 VTAB-1K tasks x 16 methods (304 rows): task, group, method, top1_last, top1_best, trainable_params, selected_hp.</summary>
    public static DataFrame Vtab1k()
    {
        var rows = Read("vtab1k_results.csv");
        return new DataFrame(S(rows, "task"), S(rows, "group"), S(rows, "method"), D(rows, "test_top1_last_epoch", "top1_last"),
            D(rows, "test_top1_best_epoch", "top1_best"), L(rows, "trainable_params_excl_head", "trainable_params"), S(rows, "selected_hyperparameters", "selected_hp"));
    }

    /// <summary>Every configuration tried on VTAB-1K (9,804 rows): task, group, method, hyperparameters, train_top1, val200_top1.</summary>
    public static DataFrame TuningGrid()
    {
        var rows = Read("vtab1k_tuning_grid.csv");
        return new DataFrame(S(rows, "task"), S(rows, "group"), S(rows, "method"), S(rows, "hyperparameters"), D(rows, "train_top1"), D(rows, "val200_top1"));
    }

    /// <summary>Many-shot and other runs (183 rows): experiment, dataset, setting, method (split from the path), top1_last, top1_best, trainable_params, selected_hp.</summary>
    public static DataFrame ManyShot()
    {
        var rows = Read("other_experiments_results.csv");
        string Part(Dictionary<string, string> r, int i) => r["experiment_path"].Split('/') is var p && p.Length == 4 ? p[i] : "";
        return new DataFrame(
            new StringDataFrameColumn("experiment", rows.Select(r => Part(r, 0))), new StringDataFrameColumn("dataset", rows.Select(r => Part(r, 1))),
            new StringDataFrameColumn("setting", rows.Select(r => Part(r, 2))), new StringDataFrameColumn("method", rows.Select(r => Part(r, 3))),
            D(rows, "test_top1_last_epoch", "top1_last"), D(rows, "test_top1_best_epoch", "top1_best"),
            L(rows, "trainable_params_excl_head", "trainable_params"), S(rows, "selected_hyperparameters", "selected_hp"));
    }

    /// <summary>CLIP ViT-B/16 on 100-shot ImageNet and four shifts (45 rows): method, eval_set, top1, trainable_params.</summary>
    public static DataFrame ClipRobustness()
    {
        var rows = Read("clip_robustness_results.csv");
        return new DataFrame(S(rows, "method"), S(rows, "eval_set"), D(rows, "top1"), L(rows, "trainable_params_excl_head", "trainable_params"));
    }

    /// <summary>WiSE-FT curves of the CLIP runs (495 rows): method, eval_set, alpha (weight on the fine-tuned model), top1.</summary>
    public static DataFrame ClipWise()
    {
        var rows = Read("clip_wise_interpolation.csv");
        return new DataFrame(S(rows, "method"), S(rows, "eval_set"), D(rows, "alpha_weight_on_finetuned", "alpha"), D(rows, "top1"));
    }

    /// <summary>The CLIP target set and the four shift sets, as the CSVs name them.</summary>
    public const string ClipTarget = "fs-imagenet";
    public static IReadOnlyList<string> ClipShifts { get; } = new[] { "imagenet-v2", "imagenet-s", "imagenet-a", "imagenet-r" };

    /// <summary>The paper's VTAB-1K table as scores ("last" or "best" epoch).</summary>
    public static IReadOnlyList<Score> Vtab1kScores(string metric = "last") =>
        Read("vtab1k_results.csv").Select(r => new Score(r["task"], r["group"], r["method"],
            Num(r[metric == "best" ? "test_top1_best_epoch" : "test_top1_last_epoch"]) ?? double.NaN)).ToList();

    /// <summary>
    /// Our mean top-1 per method and group beside the paper's (and "all" = mean over every task): method, group,
    /// ours, paper, ours_tasks. Only methods both have; the groups are ours (mini tasks stand in for VTAB's).
    /// </summary>
    public static DataFrame Beside(IReadOnlyList<Score> ours, string metric = "last")
    {
        var paper = Vtab1kScores(metric);
        var rows = new List<(string Method, string Group, double Ours, double Paper, int Tasks)>();
        foreach (var m in ours.Select(s => s.Method).Distinct().Where(m => paper.Any(p => p.Method == m)))
        {
            foreach (var g in ours.Where(s => s.Method == m).Select(s => s.Group).Distinct().OrderBy(g => g).Append("all"))
            {
                var mine = ours.Where(s => s.Method == m && (g == "all" || s.Group == g)).ToList();
                var theirs = paper.Where(s => s.Method == m && (g == "all" || s.Group == g)).ToList();
                if (theirs.Count == 0) continue;
                rows.Add((m, g, mine.Average(s => s.Top1), theirs.Average(s => s.Top1), mine.Count));
            }
        }
        return new DataFrame(
            new StringDataFrameColumn("method", rows.Select(r => r.Method)), new StringDataFrameColumn("group", rows.Select(r => r.Group)),
            new PrimitiveDataFrameColumn<double>("ours", rows.Select(r => r.Ours)), new PrimitiveDataFrameColumn<double>("paper", rows.Select(r => r.Paper)),
            new PrimitiveDataFrameColumn<int>("ours_tasks", rows.Select(r => r.Tasks)));
    }

    // ---------------------------------------------------------------- CSV (RFC 4180: quoted fields, "" escapes)

    static readonly Dictionary<string, List<Dictionary<string, string>>> cache = new();

    internal static List<Dictionary<string, string>> Read(string file)
    {
        lock (cache)
        {
            if (cache.TryGetValue(file, out var hit)) return hit;
            using var stream = typeof(Paper).Assembly.GetManifestResourceStream("PeftWorkbench.PaperData." + file)
                ?? throw new FileNotFoundException($"The PeftWorkbench assembly has no embedded PaperData/{file}.");
            using var reader = new StreamReader(stream, Encoding.UTF8);
            var records = ParseCsv(reader.ReadToEnd());
            if (records.Count == 0) throw new InvalidDataException($"PaperData/{file} is empty.");
            var header = records[0];
            var rows = new List<Dictionary<string, string>>();
            for (int i = 1; i < records.Count; i++)
            {
                if (records[i].Count != header.Count)
                    throw new InvalidDataException($"PaperData/{file} line {i + 1}: {records[i].Count} fields, the header has {header.Count}.");
                rows.Add(header.Select((h, j) => (h, records[i][j])).ToDictionary(x => x.h, x => x.Item2));
            }
            return cache[file] = rows;
        }
    }

    internal static List<List<string>> ParseCsv(string text)
    {
        var records = new List<List<string>>();
        var field = new StringBuilder();
        var record = new List<string>();
        bool quoted = false, any = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
                continue;
            }
            switch (c)
            {
                case '"': quoted = true; any = true; break;
                case ',': record.Add(field.ToString()); field.Clear(); any = true; break;
                case '\r': break;
                case '\n':
                    if (any || field.Length > 0) { record.Add(field.ToString()); records.Add(record); }
                    record = new List<string>(); field.Clear(); any = false; break;
                default: field.Append(c); any = true; break;
            }
        }
        if (any || field.Length > 0) { record.Add(field.ToString()); records.Add(record); }
        return records;
    }

    static double? Num(string s) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : null;

    static StringDataFrameColumn S(List<Dictionary<string, string>> rows, string key, string? name = null) => new(name ?? key, rows.Select(r => r[key]));
    static PrimitiveDataFrameColumn<double> D(List<Dictionary<string, string>> rows, string key, string? name = null) => new(name ?? key, rows.Select(r => Num(r[key])));
    static PrimitiveDataFrameColumn<long> L(List<Dictionary<string, string>> rows, string key, string? name = null) =>
        new(name ?? key, rows.Select(r => long.TryParse(r[key], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : (long?)null));
}
