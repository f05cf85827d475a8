using PeftWorkbench.Plots;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Markdig;
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
        pre.code { background: #f6f8fa; border-left: 3px solid #4a7ebb; padding: 0.6em; white-space: pre-wrap; overflow-wrap: anywhere; }
        pre { overflow-x: auto; }
        .markdown table { border-collapse: collapse; }
        .markdown th, .markdown td { border: 1px solid #ccc; padding: 0.2em 0.5em; }
        .output { overflow-x: auto; }
        pre.stream { margin: 0.3em 0; padding: 0.3em 0.6em; white-space: pre-wrap; overflow-wrap: anywhere; }
        pre.stderr { background: #fff4e5; }
        pre.error { background: #fdecea; color: #8b0000; padding: 0.6em; white-space: pre-wrap; overflow-wrap: anywhere; }
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

    // ---- Markdown: CommonMark (Markdig) with the GitHub extensions Jupyter's renderer also reads: pipe tables,
    // strikethrough, bare links. Raw HTML is shown as text, not passed through: a notebook's markdown cannot
    // inject markup or script into the report.

    static readonly MarkdownPipeline Pipeline = new MarkdownPipelineBuilder()
        .UsePipeTables().UseEmphasisExtras(Markdig.Extensions.EmphasisExtras.EmphasisExtraOptions.Strikethrough).UseAutoLinks()
        .DisableHtml().Build();

    public static string Markdown(string source) => Markdig.Markdown.ToHtml(source, Pipeline);

    [GeneratedRegex(@"\x1b\[[0-9;]*m")] private static partial Regex AnsiEscape();
}
