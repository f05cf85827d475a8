using PeftWorkbench.Plots;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using PeftWorkbench.Kernel.Display;

namespace PeftWorkbench.Kernel.Notebooks;

/// <summary>A standalone HTML page of an executed notebook: markdown as HTML, code, and outputs inline. Charts carry
/// plotly.js in the first chart's output (see PeftWorkbench.Display.NotebookDisplay.ChartHtml); if no output carries it (outputs
/// written by another tool), the page embeds it once at the top.</summary>
public static partial class NotebookHtml
{
    const string Style = """
        body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
        .cell { margin: 1em 0; }
        .prompt { color: #888; font-family: monospace; font-size: 0.85em; }
        pre.code { background: #f6f8fa; border-left: 3px solid #4a7ebb; padding: 0.6em; overflow-x: auto; }
        pre.stream { margin: 0.3em 0; padding: 0.3em 0.6em; }
        pre.stderr { background: #fff4e5; }
        pre.error { background: #fdecea; color: #8b0000; padding: 0.6em; }
        table.dataframe { border-collapse: collapse; font-size: 0.9em; }
        table.dataframe th, table.dataframe td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
        """;

    public static string Render(JsonObject notebook, string title)
    {
        var cells = (notebook["cells"] as JsonArray ?? new JsonArray()).OfType<JsonObject>().ToList();
        var body = new StringBuilder();
        foreach (var cell in cells)
        {
            var source = NotebookRunner.Source(cell);
            switch ((string?)cell["cell_type"])
            {
                case "markdown": body.Append("<div class=\"cell markdown\">").Append(Markdown(source)).Append("</div>\n"); break;
                case "code":
                    body.Append("<div class=\"cell code\"><div class=\"prompt\">In [").Append((int?)cell["execution_count"]?.AsValue().GetValue<int>() is int n ? n.ToString() : " ")
                        .Append("]:</div><pre class=\"code\">").Append(WebUtility.HtmlEncode(source)).Append("</pre>\n");
                    foreach (var output in (cell["outputs"] as JsonArray ?? new JsonArray()).OfType<JsonObject>()) body.Append(Output(output));
                    body.Append("</div>\n");
                    break;
                default: body.Append("<pre>").Append(WebUtility.HtmlEncode(source)).Append("</pre>\n"); break;
            }
        }
        var html = body.ToString();
        bool needsPlotly = html.Contains("Plotly.newPlot", StringComparison.Ordinal) && !html.Contains(PlotlyJs.Marker, StringComparison.Ordinal);
        return $"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{WebUtility.HtmlEncode(title)}</title>\n<style>{Style}</style>\n" +
               (needsPlotly ? PlotlyJs.ScriptTags(Execution.ConsoleRouter.OriginalError.WriteLine) : "") + $"</head>\n<body>\n{html}</body></html>\n";
    }

    static string Output(JsonObject o)
    {
        switch ((string?)o["output_type"])
        {
            case "stream":
                var name = (string?)o["name"] ?? "stdout";
                return $"<pre class=\"stream {name}\">{WebUtility.HtmlEncode(Text(o["text"]))}</pre>\n";
            case "error":
                var trace = string.Join("\n", (o["traceback"] as JsonArray ?? new JsonArray()).Select(t => (string?)t));
                return $"<pre class=\"error\">{WebUtility.HtmlEncode(AnsiEscape().Replace(trace, ""))}</pre>\n";
            case "display_data" or "execute_result":
                var data = o["data"] as JsonObject ?? new JsonObject();
                if (data["text/html"] is { } h) return $"<div class=\"output\">{Text(h)}</div>\n";
                if (data["image/png"] is { } png) return $"<div class=\"output\"><img src=\"data:image/png;base64,{Text(png).Replace("\n", "")}\"></div>\n";
                if (data["image/svg+xml"] is { } svg) return $"<div class=\"output\">{Text(svg)}</div>\n";
                if (data["text/markdown"] is { } md) return $"<div class=\"output\">{Markdown(Text(md))}</div>\n";
                if (data["text/plain"] is { } plain) return $"<pre class=\"output\">{WebUtility.HtmlEncode(Text(plain))}</pre>\n";
                return "";
            default: return "";
        }
    }

    static string Text(JsonNode? node) => node switch
    {
        JsonArray a => string.Concat(a.Select(x => (string?)x)),
        JsonValue v => (string?)v ?? "",
        _ => "",
    };

    // ---- a small Markdown subset: headings, paragraphs, lists, fenced code, inline code, bold, italics, links ----

    public static string Markdown(string source)
    {
        var sb = new StringBuilder();
        var lines = source.Replace("\r\n", "\n").Split('\n');
        string? list = null;
        var paragraph = new List<string>();
        void EndParagraph() { if (paragraph.Count > 0) { sb.Append("<p>").Append(Inline(string.Join(" ", paragraph))).Append("</p>\n"); paragraph.Clear(); } }
        void EndList() { if (list is not null) { sb.Append($"</{list}>\n"); list = null; } }
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal))
            {
                EndParagraph(); EndList();
                var code = new List<string>();
                while (++i < lines.Length && !lines[i].TrimStart().StartsWith("```", StringComparison.Ordinal)) code.Add(lines[i]);
                sb.Append("<pre class=\"code\">").Append(WebUtility.HtmlEncode(string.Join("\n", code))).Append("</pre>\n");
            }
            else if (Heading().Match(line) is { Success: true } h)
            {
                EndParagraph(); EndList();
                int level = h.Groups[1].Length;
                sb.Append($"<h{level}>").Append(Inline(h.Groups[2].Value)).Append($"</h{level}>\n");
            }
            else if (ListItem().Match(line) is { Success: true } li)
            {
                EndParagraph();
                var kind = char.IsDigit(li.Groups[1].Value[0]) ? "ol" : "ul";
                if (list != kind) { EndList(); sb.Append($"<{kind}>\n"); list = kind; }
                sb.Append("<li>").Append(Inline(li.Groups[2].Value)).Append("</li>\n");
            }
            else if (line.Trim().Length == 0) { EndParagraph(); EndList(); }
            else { EndList(); paragraph.Add(line.Trim()); }
        }
        EndParagraph(); EndList();
        return sb.ToString();
    }

    static string Inline(string text)
    {
        // Code spans first, so their contents are not read as emphasis.
        var parts = text.Split('`');
        var sb = new StringBuilder();
        for (int i = 0; i < parts.Length; i++)
        {
            var encoded = WebUtility.HtmlEncode(parts[i]);
            if (i % 2 == 1 && i < parts.Length - 1) { sb.Append("<code>").Append(encoded).Append("</code>"); continue; }
            encoded = Link().Replace(encoded, m => $"<a href=\"{m.Groups[2].Value}\">{m.Groups[1].Value}</a>");
            encoded = Bold().Replace(encoded, "<strong>$1</strong>");
            encoded = Italic().Replace(encoded, "<em>$1</em>");
            sb.Append(i % 2 == 1 ? "`" + encoded : encoded);
        }
        return sb.ToString();
    }

    [GeneratedRegex(@"^(#{1,6})\s+(.*)$")] private static partial Regex Heading();
    [GeneratedRegex(@"^\s*([-*+]|\d+[.)])\s+(.*)$")] private static partial Regex ListItem();
    [GeneratedRegex(@"\[([^\]]+)\]\(([^)\s]+)\)")] private static partial Regex Link();
    [GeneratedRegex(@"\*\*(.+?)\*\*")] private static partial Regex Bold();
    [GeneratedRegex(@"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")] private static partial Regex Italic();
    [GeneratedRegex(@"\x1b\[[0-9;]*m")] private static partial Regex AnsiEscape();
}
