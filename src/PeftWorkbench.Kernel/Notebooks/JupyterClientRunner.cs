using System.Diagnostics;
using System.Text.Json.Nodes;

namespace PeftWorkbench.Kernel.Notebooks;

/// <summary>Runs a notebook through Jupyter's own client (Debian's python3-nbclient, the library behind `jupyter execute`)
/// and an installed kernelspec, by default .NET Interactive's `.net-csharp`, and writes the same executed .ipynb and HTML
/// as <see cref="NotebookRunner"/>: the same injected parameters cell, the same normalised metadata.</summary>
public static class JupyterClientRunner
{
    public const string DotNetInteractiveKernel = ".net-csharp";

    /// <summary>nbclient, cell by cell: each cell's start goes to stderr (progress), the first error stops the run (the
    /// executed notebook is still written), and the index of the failing cell comes back on stdout.</summary>
    const string Script = """
        import sys, time, nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
        src, out, kernel, label, stop = sys.argv[1:6]
        nb = nbformat.read(src, as_version=4)
        client = NotebookClient(nb, kernel_name=kernel, timeout=1800, startup_timeout=300, record_timing=False)
        failed = None
        start = time.time()
        with client.setup_kernel():
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                print(f"{label}: cell {i} ({time.time() - start:.1f} s)", file=sys.stderr, flush=True)
                try:
                    client.execute_cell(cell, i)
                except CellExecutionError:
                    if failed is None:
                        failed = i
                    if stop == "stop":
                        break
        nbformat.write(nb, out)
        print("ok" if failed is None else f"failed {failed}", flush=True)
        """;

    /// <param name="stopOnError">Stop at the first failing cell (as `peft notebooks run` does); false runs every cell and reports the first failure.</param>
    /// <param name="environment">Variables for the client and the kernel it starts (e.g. NUGET_PACKAGES); a null value removes the variable.</param>
    public static NotebookRunResult Run(string notebookPath, string outDir, string profile, string kernelName = DotNetInteractiveKernel,
        bool stopOnError = true, IReadOnlyDictionary<string, string?>? environment = null, string python = "/usr/bin/python3")
    {
        var fullPath = Path.GetFullPath(notebookPath);
        var notebook = NotebookRunner.Load(fullPath);
        var cells = notebook["cells"] as JsonArray ?? throw new InvalidDataException($"{notebookPath}: no \"cells\" array.");
        var sourceIndex = NotebookRunner.InjectParameters(cells, profile);
        Directory.CreateDirectory(outDir);
        var name = Path.GetFileNameWithoutExtension(fullPath);
        var input = Path.Combine(outDir, $".{name}.{Environment.ProcessId}.in.ipynb");
        var executed = Path.Combine(outDir, $".{name}.{Environment.ProcessId}.out.ipynb");
        try
        {
            File.WriteAllText(input, notebook.ToJsonString());
            var psi = new ProcessStartInfo(python)
            {
                UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true,
                WorkingDirectory = Path.GetDirectoryName(fullPath)!, // cells see the notebook's folder, as under Jupyter
            };
            foreach (var a in new[] { "-c", Script, input, executed, kernelName, notebookPath, stopOnError ? "stop" : "go-on" }) psi.ArgumentList.Add(a);
            psi.Environment["PEFT_PROFILE"] = profile;
            // No network here: .NET Interactive's first-run banner and telemetry only slow its start.
            psi.Environment["DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT"] = "1";
            psi.Environment["DOTNET_NOLOGO"] = "1";
            foreach (var (k, v) in environment ?? new Dictionary<string, string?>())
                if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v;
            Process process;
            try { process = Process.Start(psi)!; }
            catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException($"cannot run {python} (install python3-nbclient, see environment/apt-packages.txt): {e.Message}", e); }
            string verdict;
            var stderr = new StderrTail();
            using (process)
            {
                process.ErrorDataReceived += (_, e) => stderr.Add(e.Data);
                process.BeginErrorReadLine();
                verdict = process.StandardOutput.ReadToEnd().Trim().Split('\n')[^1].Trim(); // the last line: kernels may log on it too
                process.WaitForExit();
                if (process.ExitCode != 0 || !File.Exists(executed))
                    return new NotebookRunResult(notebookPath, false, null,
                        $"Jupyter's client could not run kernel '{kernelName}' (exit code {process.ExitCode})" +
                        (kernelName == DotNetInteractiveKernel ? "; environment/setup.sh installs dotnet-interactive and its .net-csharp kernelspec" : "") +
                        $". The client's and kernel's last messages:\n{stderr}");
            }
            var result = NotebookRunner.Load(executed);
            NotebookRunner.Normalise(result);
            Coalesce(result);
            var (ipynb, html) = NotebookRunner.Write(result, outDir, name);
            int? failed = verdict.StartsWith("failed ", StringComparison.Ordinal) ? int.Parse(verdict[7..]) : null;
            if (failed is null) return new NotebookRunResult(notebookPath, true, ExecutedPath: ipynb, HtmlPath: html);
            // .NET Interactive puts a compile error's text in a stream and "compilation error" in the error itself.
            var outputs = (result["cells"]![failed.Value]!["outputs"] as JsonArray)?.OfType<JsonObject>().ToList() ?? new();
            var error = outputs.FirstOrDefault(o => (string?)o["output_type"] == "error");
            var streams = string.Concat(outputs.Where(o => (string?)o["output_type"] == "stream").Select(o => Text(o["text"]))).Trim();
            var message = (error is null ? "error" : $"{(string?)error["ename"]}: {(string?)error["evalue"]}") + (streams.Length > 0 ? "\n" + streams : "");
            return new NotebookRunResult(notebookPath, false, sourceIndex[failed.Value], message, ipynb, html);
        }
        finally
        {
            File.Delete(input);
            File.Delete(executed);
        }
    }

    /// <summary>Outputs as our runner stores them: multi-line strings as one string (nbformat allows both) and
    /// consecutive stream outputs of one stream merged.</summary>
    static void Coalesce(JsonObject notebook)
    {
        foreach (var cell in (notebook["cells"] as JsonArray ?? new JsonArray()).OfType<JsonObject>())
        {
            if (cell["outputs"] is not JsonArray outputs) continue;
            var merged = new JsonArray();
            foreach (var o in outputs.OfType<JsonObject>().ToList())
            {
                outputs.Remove(o);
                if (o["text"] is JsonArray) o["text"] = Text(o["text"]);
                if (o["data"] is JsonObject data)
                    foreach (var key in data.Select(kv => kv.Key).ToList())
                        if (data[key] is JsonArray) data[key] = Text(data[key]);
                if ((string?)o["output_type"] == "stream" && merged.Count > 0 && merged[^1] is JsonObject last
                    && (string?)last["output_type"] == "stream" && (string?)last["name"] == (string?)o["name"])
                    last["text"] = Text(last["text"]) + Text(o["text"]);
                else merged.Add(o);
            }
            cell["outputs"] = merged;
        }
    }

    static string Text(JsonNode? n) => n is JsonArray a ? string.Concat(a.Select(x => (string?)x)) : (string?)n ?? "";

    /// <summary>stderr passed through as it comes (cell progress, the kernel's log) and its last lines kept, so a failure
    /// says why where only the failure message is shown (a test runner, CI). A kernel's exception line comes before its
    /// stack and the client's traceback, which fill the tail: the first few such lines are kept apart and shown first.</summary>
    sealed class StderrTail
    {
        const int Keep = 40, KeepErrors = 4;
        readonly Queue<string> lines = new();
        readonly List<string> errors = new();
        public void Add(string? line)
        {
            if (line is null) return;
            Console.Error.WriteLine(line);
            lock (lines)
            {
                lines.Enqueue(line);
                if (lines.Count > Keep) lines.Dequeue();
                var t = line.Trim();
                if (errors.Count < KeepErrors && t.Contains("Exception", StringComparison.Ordinal) && !t.StartsWith("at ", StringComparison.Ordinal)
                    && !t.StartsWith("---", StringComparison.Ordinal) && !errors.Contains(t)) errors.Add(t);
            }
        }
        public override string ToString()
        {
            lock (lines)
                return (errors.Count > 0 ? "first errors:\n" + string.Join("\n", errors) + "\nlast lines:\n" : "") + string.Join("\n", lines);
        }
    }
}
