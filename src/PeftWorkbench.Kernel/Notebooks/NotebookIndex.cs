using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace PeftWorkbench.Kernel.Notebooks;

/// <summary>One notebook of a `peft notebooks run`: how it ended, how long it took, and where its outputs are (null
/// when no executed notebook of this run exists, e.g. its process crashed).</summary>
public sealed record IndexEntry(string Notebook, string Profile, string Kernel, double WallSeconds, bool Ok, string? ExecutedPath, string? HtmlPath,
    string? Problem = null);

/// <summary>
/// The report's front page, index.html and index.md beside the executed notebooks: one line per notebook with a link
/// to its HTML, its profile and wall time, and its finding: the text its cell tagged `finding` printed (the finding
/// notebooks print one line, ours beside the paper's). A notebook without such a cell says so; a failed one names the
/// cell and the error instead. The page is built from the executed notebooks alone, so it is the same whichever
/// kernel ran them.
/// </summary>
public static class NotebookIndex
{
    public const string FindingTag = "finding";
    /// <summary>The cell whose printed line holds the finding's verdicts ("claim: agrees; claim: disagrees").</summary>
    public const string VerdictTag = "verdict";

    /// <summary>What an entry's verdict column says: the text its cell tagged `verdict` printed, or "" (none, or failed).</summary>
    public static string VerdictOf(IndexEntry e)
    {
        if (!e.Ok || e.ExecutedPath is null || !File.Exists(e.ExecutedPath)) return "";
        var cell = Cells(NotebookRunner.Load(e.ExecutedPath)).FirstOrDefault(c => HasTag(c, VerdictTag));
        return cell is null ? "" : string.Join(" ", OutputText(cell).Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0));
    }

    /// <summary>What an entry's finding column says.</summary>
    public static string FindingOf(IndexEntry e)
    {
        var notebook = e.ExecutedPath is not null && File.Exists(e.ExecutedPath) ? NotebookRunner.Load(e.ExecutedPath) : null;
        if (!e.Ok)
        {
            var error = notebook is null ? null : FirstError(notebook);
            return "FAILED: " + (error ?? e.Problem ?? "no executed notebook was written");
        }
        if (notebook is null) return "no executed notebook";
        var cell = Cells(notebook).FirstOrDefault(c => HasTag(c, FindingTag));
        if (cell is null) return "no finding cell (not a finding notebook)";
        var text = string.Join(" ", OutputText(cell).Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0));
        return text.Length > 0 ? text : "the finding cell printed nothing";
    }

    /// <summary>Writes OUT/index.html and OUT/index.md; returns the HTML page's path. The verdicts this run printed are
    /// recorded under its profile and <paramref name="backbone"/> (null: <see cref="Workbench.DefaultBackbone"/>) in OUT/verdicts.json
    /// (<see cref="VerdictMemory"/>); verdicts recorded there for other backbones under the same profile get a column each.</summary>
    public static string Write(string outDir, IReadOnlyList<IndexEntry> entries, string? backbone = null, Action<string>? warn = null)
    {
        Directory.CreateDirectory(outDir);
        var rows = entries.Select(e => (Entry: e, Name: Path.GetFileNameWithoutExtension(e.Notebook), Finding: FindingOf(e), Verdict: VerdictOf(e),
            Html: e.HtmlPath is not null && File.Exists(e.HtmlPath) ? Path.GetRelativePath(outDir, e.HtmlPath) : null)).ToList();
        int failed = rows.Count(r => !r.Entry.Ok);
        var now = DateTime.UtcNow;
        var when = DateTime.Now.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture);
        var total = Seconds(entries.Sum(e => e.WallSeconds));
        var profiles = string.Join(", ", entries.Select(e => e.Profile).Distinct());
        var kernels = string.Join(", ", entries.Select(e => e.Kernel).Distinct());
        var thisBackbone = backbone ?? Workbench.DefaultBackbone;
        var summary = $"{rows.Count} notebooks, {(failed == 0 ? "all ran" : $"{failed} FAILED")}; profile {profiles}; backbone {thisBackbone}; kernel {kernels}; {total} in all; {when}.";

        var memory = VerdictMemory.Load(outDir, warn);
        foreach (var r in rows.Where(r => r.Verdict.Length > 0)) memory.Set(r.Entry.Profile, thisBackbone, r.Name, new RecordedVerdict(r.Verdict, now));
        memory.Save(outDir);
        // Other backbones' verdicts, under the profile each row ran with (a run has one profile; the index reads it per row anyway).
        var others = rows.GroupBy(r => r.Entry.Profile).SelectMany(g => memory.OtherBackbones(g.Key, thisBackbone, g.Select(r => r.Name)))
            .Distinct().Order(StringComparer.Ordinal).ToList();
        // Each row's verdict cells: this run's, then each other backbone's recorded one with its date.
        var cells = rows.Select(r => new[] { r.Verdict }.Concat(others.Select(b => memory.Get(r.Entry.Profile, b, r.Name) is { } v
            ? $"{v.Verdict} ({v.When.ToLocalTime().ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)})" : "")).ToList()).ToList();
        var verdictHeads = new[] { $"verdict ({thisBackbone})" }.Concat(others.Select(b => $"verdict on {b}, recorded")).ToList();
        if (others.Count > 0)
            summary += $" The verdict columns after the first were recorded by earlier runs into this folder on other backbones ({VerdictMemory.FileName}).";

        var md = new StringBuilder("# PeftWorkbench: the study's findings on the mini suite\n\n").Append(summary).Append("\n\n")
            .Append("| notebook | profile | wall time | ").Append(string.Join(" | ", verdictHeads)).Append(" | finding (ours; the paper's) |\n|---|---|---|")
            .Append(string.Concat(verdictHeads.Select(_ => "---|"))).Append("---|\n");
        foreach (var (r, verdicts) in rows.Zip(cells))
            md.Append($"| {(r.Html is null ? r.Name : $"[{r.Name}]({r.Html})")} | {r.Entry.Profile} | {Seconds(r.Entry.WallSeconds)} | ")
                .Append(string.Concat(verdicts.Select(v => v.Replace("|", "\\|") + " | ")))
                .Append($"{r.Finding.Replace("|", "\\|")} |\n");

        var html = new StringBuilder("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>PeftWorkbench report</title>\n<style>")
            .Append("body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }\n")
            .Append("table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }\n")
            .Append("td.failed { color: #8b0000; }</style></head>\n<body>\n<h1>PeftWorkbench: the study's findings on the mini suite</h1>\n")
            .Append("<p>").Append(WebUtility.HtmlEncode(summary)).Append("</p>\n")
            .Append("<table><thead><tr><th>notebook</th><th>profile</th><th>wall time</th>")
            .Append(string.Concat(verdictHeads.Select(h => $"<th>{WebUtility.HtmlEncode(h)}</th>"))).Append("<th>finding (ours; the paper's)</th></tr></thead><tbody>\n");
        foreach (var (r, verdicts) in rows.Zip(cells))
        {
            var name = WebUtility.HtmlEncode(r.Name);
            html.Append("<tr><td>").Append(r.Html is null ? name : $"<a href=\"{WebUtility.HtmlEncode(Uri.EscapeDataString(r.Html).Replace("%2F", "/"))}\">{name}</a>")
                .Append("</td><td>").Append(WebUtility.HtmlEncode(r.Entry.Profile)).Append("</td><td>").Append(Seconds(r.Entry.WallSeconds))
                .Append(string.Concat(verdicts.Select(v => "</td><td>" + WebUtility.HtmlEncode(v))))
                .Append(r.Entry.Ok ? "</td><td>" : "</td><td class=\"failed\">").Append(WebUtility.HtmlEncode(r.Finding)).Append("</td></tr>\n");
        }
        html.Append("</tbody></table>\n</body></html>\n");

        var page = Path.Combine(outDir, "index.html");
        File.WriteAllText(Path.Combine(outDir, "index.md"), md.ToString());
        File.WriteAllText(page, html.ToString());
        return page;
    }

    static string Seconds(double s) => s < 120 ? $"{s:F1} s" : $"{Math.Floor(s / 60):F0} min {s % 60:00} s";

    static IEnumerable<JsonObject> Cells(JsonObject notebook) => (notebook["cells"] as JsonArray ?? new JsonArray()).OfType<JsonObject>();

    static bool HasTag(JsonObject cell, string tag) => cell["metadata"]?["tags"] is JsonArray tags && tags.Any(t => (string?)t == tag);

    static IEnumerable<JsonObject> Outputs(JsonObject cell) => (cell["outputs"] as JsonArray ?? new JsonArray()).OfType<JsonObject>();

    /// <summary>What a cell printed: its stdout, and the plain text of what it displayed or returned.</summary>
    static string OutputText(JsonObject cell) => string.Concat(Outputs(cell).Select(o => (string?)o["output_type"] switch
    {
        "stream" when (string?)o["name"] == "stdout" => Text(o["text"]),
        "display_data" or "execute_result" => Text(o["data"]?["text/plain"]) + "\n",
        _ => "",
    }));

    /// <summary>"cell N: Name: message" for the first error output (N counts cells as the source notebook does, less the injected parameters cell).</summary>
    static string? FirstError(JsonObject notebook)
    {
        int index = 0;
        foreach (var cell in Cells(notebook))
        {
            if (HasTag(cell, "injected-parameters")) continue;
            if (Outputs(cell).FirstOrDefault(o => (string?)o["output_type"] == "error") is { } error)
            {
                var message = $"{(string?)error["ename"]}: {(string?)error["evalue"]}".Split('\n')[0];
                return $"cell {index}: {message}";
            }
            index++;
        }
        return null;
    }

    static string Text(JsonNode? n) => n is JsonArray a ? string.Concat(a.Select(x => (string?)x)) : (string?)n ?? "";
}
