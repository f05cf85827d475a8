using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftWorkbench.Kernel.Execution;
using PeftWorkbench.Kernel.Protocol;

namespace PeftWorkbench.Kernel.Notebooks;

/// <summary>How a headless run ended: all cells ran, or the first failing cell (index as in the source notebook).</summary>
public sealed record NotebookRunResult(string Notebook, bool Ok, int? FailedCell = null, string Error = "", string? ExecutedPath = null, string? HtmlPath = null)
{
    public string Describe() => Ok ? $"{Notebook}: ok" : $"{Notebook}: cell {FailedCell} failed: {Error}";
}

/// <summary>Runs a notebook's code cells through a <see cref="ScriptEngine"/> (in this process) and writes the executed
/// notebook (nbformat 4.5) and a standalone HTML page.</summary>
public static class NotebookRunner
{
    public const string KernelName = "peft-workbench";
    public const string DisplayName = "C# (PeftWorkbench)";

    /// <summary>What the status file holds once the run has ended and reported (ok or a failing cell).</summary>
    public const string StatusEnded = "ended";

    /// <param name="statusFile">If set, the index of each cell is written there before it runs, and
    /// <see cref="StatusEnded"/> once the run has written its notebook and result, so a parent process can name the cell
    /// that ended this one (a native abort or Environment.Exit ends the process with no chance to report).</param>
    /// <param name="cellTimeout">If set, a cell running longer is cancelled (as an interrupt) and reported as failed; one
    /// that ignores Cancellation is abandoned, and the caller should end the process, which stops it.</param>
    public static NotebookRunResult Run(string notebookPath, string outDir, string profile, string? statusFile = null, Action<string>? progress = null, TimeSpan? cellTimeout = null)
    {
        var fullPath = Path.GetFullPath(notebookPath);
        var notebook = Load(fullPath);
        Validate(notebook, notebookPath);
        var cells = (JsonArray)notebook["cells"]!;
        var sourceIndex = InjectParameters(cells, profile);

        var sink = new NotebookSink();
        var engine = new ScriptEngine(sink, Path.GetDirectoryName(fullPath), profile);
        // Roslyn and torch start before the first cell, so a cell timeout measures the cell alone.
        if (cellTimeout is not null) engine.WarmUp();
        NotebookRunResult? failure = null;
        int count = 0;
        for (int i = 0; i < cells.Count; i++)
        {
            if (cells[i] is not JsonObject cell || (string?)cell["cell_type"] != "code") continue;
            var outputs = new JsonArray();
            cell["outputs"] = outputs;
            var source = Source(cell);
            if (source.Trim().Length == 0) { cell["execution_count"] = null; continue; }
            if (statusFile is not null) File.WriteAllText(statusFile, sourceIndex[i].ToString());
            progress?.Invoke($"{notebookPath}: cell {sourceIndex[i]}");
            sink.Current = outputs;
            cell["execution_count"] = ++count;
            CellResult result;
            using (var timeout = new CancellationTokenSource())
            {
                if (cellTimeout is { } limit) timeout.CancelAfter(limit);
                result = engine.Execute(source, timeout.Token);
                if (result.Status == CellStatus.Interrupted && timeout.IsCancellationRequested)
                    result = result with
                    {
                        ErrorName = "CellTimeout",
                        ErrorValue = $"ran over the cell timeout of {Seconds(cellTimeout)}" + (engine.AbandonedCellRunning
                            ? " and ignored Cancellation (it stops when this process ends)" : " and stopped on Cancellation"),
                    };
            }
            sink.Seal();
            sink.Current = null;
            if (result.Status == CellStatus.Ok)
            {
                if (result.Value is { } value)
                    outputs.Add(new JsonObject { ["output_type"] = "execute_result", ["execution_count"] = count, ["data"] = Data(value), ["metadata"] = new JsonObject() });
                continue;
            }
            outputs.Add(new JsonObject
            {
                ["output_type"] = "error", ["ename"] = result.ErrorName, ["evalue"] = result.ErrorValue,
                ["traceback"] = new JsonArray(result.TracebackLines.Select(l => (JsonNode?)l).ToArray()),
            });
            failure = new NotebookRunResult(notebookPath, false, sourceIndex[i], $"{result.ErrorName}: {result.ErrorValue}");
            break;
        }

        Normalise(notebook);
        var (ipynb, html) = Write(notebook, outDir, Path.GetFileNameWithoutExtension(fullPath));
        if (statusFile is not null) File.WriteAllText(statusFile, StatusEnded);
        return (failure ?? new NotebookRunResult(notebookPath, true)) with { ExecutedPath = ipynb, HtmlPath = html };
    }

    /// <summary>The executed notebook and its HTML page, as OUT/NAME.ipynb and OUT/NAME.html (also for <see cref="JupyterClientRunner"/>).</summary>
    internal static (string Ipynb, string Html) Write(JsonObject notebook, string outDir, string name)
    {
        Directory.CreateDirectory(outDir);
        var ipynb = Path.Combine(outDir, name + ".ipynb");
        var html = Path.Combine(outDir, name + ".html");
        WriteAtomically(ipynb, notebook.ToJsonString(Json) + "\n");
        WriteAtomically(html, NotebookHtml.Render(notebook, name));
        return (ipynb, html);
    }

    static string Seconds(TimeSpan? t) => t is { } x ? $"{x.TotalSeconds:0.###} s" : "";

    /// <summary>Indented, and without escaping HTML characters: outputs carry whole scripts.</summary>
    static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static JsonObject Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Notebook not found: {path}", path);
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object.");
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e); }
    }

    /// <summary>
    /// Checks a run before its first cell: the profile is in the profile table, no notebook is called index (its page
    /// would be overwritten by the run's index.html), no two share a name (one's outputs would replace the other's
    /// while the index lists both), and each notebook is well-formed (<see cref="Validate"/>). Throws naming the
    /// notebook (and cell) at fault.
    /// </summary>
    public static void CheckRun(IReadOnlyList<string> notebooks, string profile)
    {
        if (!PeftWorkbench.Tuning.Profiles.Names.Contains(profile))
            throw new ArgumentException($"--profile {profile}: not a profile. Known profiles: {string.Join(", ", PeftWorkbench.Tuning.Profiles.Names)}.");
        foreach (var group in notebooks.GroupBy(n => Path.GetFileNameWithoutExtension(n), StringComparer.OrdinalIgnoreCase))
        {
            if (group.Key.Equals("index", StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"{group.First()}: a notebook named index would write index.html, which the run writes as its index; rename the notebook.");
            if (group.Count() > 1)
                throw new ArgumentException($"{string.Join(" and ", group)} share the name {group.Key}: their executed notebooks and pages would overwrite each other in the output folder; rename one.");
        }
        foreach (var nb in notebooks) Validate(Load(Path.GetFullPath(nb)), nb);
    }

    /// <summary>
    /// nbformat 4's shape where the runner relies on it, checked before any cell runs: nbformat and nbformat_minor are
    /// integers; "cells" is an array of objects with a string cell_type, a string id (if any), a string or array of
    /// strings as source, and tags (if any) an array of strings. Throws InvalidDataException naming the notebook and cell.
    /// </summary>
    public static void Validate(JsonObject notebook, string name)
    {
        foreach (var key in new[] { "nbformat", "nbformat_minor" })
            if (notebook[key] is { } v && !(v is JsonValue jv && jv.TryGetValue<int>(out _)))
                throw new InvalidDataException($"{name}: {key} is {v.ToJsonString()}, not an integer.");
        if (notebook["cells"] is not JsonArray cells) throw new InvalidDataException($"{name}: no \"cells\" array.");
        for (int i = 0; i < cells.Count; i++)
        {
            string At(string what) => $"{name}: cell {i}: {what}";
            if (cells[i] is not JsonObject cell) throw new InvalidDataException(At($"is {cells[i]?.ToJsonString() ?? "null"}, not an object."));
            if (!IsString(cell["cell_type"])) throw new InvalidDataException(At($"cell_type is {Shown(cell["cell_type"])}, not a string."));
            if (cell["id"] is { } id && !IsString(id)) throw new InvalidDataException(At($"id is {Shown(id)}, not a string."));
            if (cell["source"] is { } source && !IsString(source) && !(source is JsonArray parts && parts.All(IsString)))
                throw new InvalidDataException(At("source is neither a string nor an array of strings."));
            if (cell["metadata"] is { } metadata && metadata is not JsonObject) throw new InvalidDataException(At("metadata is not an object."));
            if (cell["metadata"]?["tags"] is { } tags && !(tags is JsonArray list && list.All(IsString)))
                throw new InvalidDataException(At($"metadata.tags is {Shown(tags)}, not an array of strings."));
        }
    }

    static bool IsString(JsonNode? n) => n is JsonValue v && v.TryGetValue<string>(out _);
    static string Shown(JsonNode? n) { var text = n?.ToJsonString() ?? "missing"; return text.Length <= 60 ? text : text[..57] + "..."; }

    /// <summary>papermill's convention: after the cell tagged "parameters" (or first, if none) a cell tagged
    /// "injected-parameters" sets Profile. Returns, for each cell, its index in the source notebook.</summary>
    internal static int[] InjectParameters(JsonArray cells, string profile)
    {
        int at = 0;
        for (int i = 0; i < cells.Count; i++)
            if (cells[i]?["metadata"]?["tags"] is JsonArray tags && tags.Any(t => (string?)t == "parameters")) { at = i + 1; break; }
        var injected = new JsonObject
        {
            ["cell_type"] = "code",
            ["id"] = "injected-parameters",
            ["metadata"] = new JsonObject { ["tags"] = new JsonArray("injected-parameters") },
            ["execution_count"] = null,
            ["outputs"] = new JsonArray(),
            ["source"] = $"// Parameters injected by `peft notebooks run`\nProfile = {JsonSerializer.Serialize(profile)};",
        };
        cells.Insert(at, injected);
        // The injected cell reports as the cell it follows.
        return Enumerable.Range(0, cells.Count).Select(i => i < at ? i : i == at ? Math.Max(at - 1, 0) : i - 1).ToArray();
    }

    public static string Source(JsonObject cell) => cell["source"] switch
    {
        JsonArray lines => string.Concat(lines.Select(l => (string?)l)),
        JsonValue v => (string?)v ?? "",
        _ => "",
    };

    /// <summary>nbformat 4.5: every cell has an id. The notebook's own kernelspec and language_info stay (the notebooks
    /// carry .NET Interactive's, so either kernel's output opens as a .NET notebook); where missing, ours are written.</summary>
    internal static void Normalise(JsonObject nb)
    {
        nb["nbformat"] = 4;
        if ((int?)nb["nbformat_minor"] is not >= 5) nb["nbformat_minor"] = 5;
        var metadata = nb["metadata"] as JsonObject ?? new JsonObject();
        nb["metadata"] = metadata;
        if (metadata["kernelspec"] is not JsonObject)
            metadata["kernelspec"] = new JsonObject { ["name"] = KernelName, ["display_name"] = DisplayName, ["language"] = JupyterKernel.LanguageName };
        if (metadata["language_info"] is not JsonObject) metadata["language_info"] = JupyterKernel.LanguageInfo();
        var seen = new HashSet<string>();
        int n = 0;
        foreach (var cell in (nb["cells"] as JsonArray ?? new JsonArray()).OfType<JsonObject>())
        {
            var id = (string?)cell["id"];
            if (id is null || !seen.Add(id)) { do id = $"cell-{n++}"; while (!seen.Add(id)); cell["id"] = id; }
            cell["metadata"] ??= new JsonObject();
        }
    }

    static JsonObject Data(IReadOnlyDictionary<string, string> bundle)
    {
        var o = new JsonObject();
        foreach (var (k, v) in bundle) o[k] = v;
        return o;
    }

    static void WriteAtomically(string path, string text) => PeftWorkbench.Checkpoints.AtomicFile.WriteText(path, text);

    /// <summary>Stores outputs as nbformat outputs: consecutive stream text merged, display updates applied in place.
    /// The stream output being written gathers its text in a StringBuilder and becomes a string once another output
    /// follows or the cell ends (appending to the JSON string per line made a run quadratic in its output).</summary>
    sealed class NotebookSink : IOutputSink
    {
        readonly object gate = new();
        readonly Dictionary<string, List<JsonObject>> displays = new();
        public JsonArray? Current;
        JsonObject? openStream;
        readonly StringBuilder openText = new();

        public void Stream(string name, string text)
        {
            lock (gate)
            {
                if (Current is null) return;
                if (openStream is not null && Current.Count > 0 && ReferenceEquals(Current[^1], openStream) && (string?)openStream["name"] == name)
                {
                    openText.Append(text);
                    return;
                }
                SealLocked();
                openStream = new JsonObject { ["output_type"] = "stream", ["name"] = name, ["text"] = "" };
                openText.Append(text);
                Current.Add(openStream);
            }
        }

        /// <summary>Writes the open stream output's text into its JSON.</summary>
        public void Seal() { lock (gate) SealLocked(); }

        void SealLocked()
        {
            if (openStream is null) return;
            openStream["text"] = openText.ToString();
            openStream = null;
            openText.Clear();
        }

        public void Display(IReadOnlyDictionary<string, string> data, string? displayId, bool update)
        {
            lock (gate)
            {
                if (update)
                {
                    if (displayId is not null && displays.TryGetValue(displayId, out var shown))
                        foreach (var o in shown) o["data"] = Data(data);
                    return;
                }
                if (Current is null) return;
                SealLocked();
                var output = new JsonObject { ["output_type"] = "display_data", ["data"] = Data(data), ["metadata"] = new JsonObject() };
                Current.Add(output);
                if (displayId is not null)
                {
                    if (!displays.TryGetValue(displayId, out var list)) displays[displayId] = list = new();
                    list.Add(output);
                }
            }
        }
    }
}
