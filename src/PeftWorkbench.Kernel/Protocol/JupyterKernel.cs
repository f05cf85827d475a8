using System.Collections.Concurrent;
using System.Reflection;
using System.Text;
using System.Text.Json.Nodes;
using NetMQ;
using NetMQ.Sockets;
using PeftWorkbench.Kernel.Execution;

namespace PeftWorkbench.Kernel.Protocol;

/// <summary>The Jupyter kernel: five ZeroMQ channels (protocol 5.3) in front of one <see cref="ScriptEngine"/>.
/// One poller thread owns every socket (NetMQ sockets are not thread-safe); shell requests run in order on a worker
/// thread, so control (interrupt, shutdown) stays responsive while a cell runs.</summary>
public sealed class JupyterKernel : IOutputSink, IDisposable
{
    public const string LanguageName = "C#";
    readonly ConnectionInfo connection;
    readonly WireCodec codec;
    readonly string session = Guid.NewGuid().ToString();
    readonly RouterSocket shell = new(), control = new(), stdin = new();
    readonly PublisherSocket iopub = new();
    readonly ResponseSocket heartbeat = new();
    readonly NetMQQueue<(NetMQSocket? Socket, Message? Message)> outbox = new();
    readonly ManualResetEventSlim drained = new();
    readonly NetMQPoller poller;
    readonly BlockingCollection<Message> shellQueue = new();
    readonly ManualResetEventSlim stopped = new();
    readonly TextWriter log;
    public ScriptEngine Engine { get; }
    int executionCount;
    volatile Message? currentParent;
    /// <summary>The execute request being served, cancelled by interrupt_request even before the engine starts it.</summary>
    volatile CancellationTokenSource? currentCell;
    volatile bool stopping;

    /// <summary>True after a shutdown_request asked for a restart (the front end starts a new process).</summary>
    public bool RestartRequested { get; private set; }
    /// <summary>Signatures rejected so far (tests read it; each one is also logged).</summary>
    public int RejectedMessages => rejected;
    int rejected;
    readonly SignatureHistory signatures = new();

    /// <summary>True when the kernel stopped itself because an interrupted cell would not stop (its thread cannot be
    /// aborted in .NET): the process must end so the loop ends; Jupyter then restarts the kernel, as after a crash.</summary>
    public bool AbandonedCell { get; private set; }

    /// <summary>Stream text is sent at most this often (and at once past <see cref="StreamChunkChars"/>), so a cell printing
    /// a line per iteration sends a few messages a second, not one per line.</summary>
    public static TimeSpan StreamInterval { get; set; } = TimeSpan.FromMilliseconds(50);
    public const int StreamChunkChars = 1 << 18;
    readonly object streamGate = new();
    readonly StringBuilder pendingText = new();
    string? pendingName;
    Message? pendingParent;
    readonly Timer streamTimer;
    bool streamTimerArmed;

    public JupyterKernel(ConnectionInfo connection, string? workingDirectory = null, TextWriter? log = null)
    {
        this.connection = connection;
        codec = new WireCodec(connection.Key);
        Engine = new ScriptEngine(this, workingDirectory);
        this.log = log ?? ConsoleRouter.OriginalError;
        streamTimer = new Timer(_ => FlushStreams());
        // ZeroMQ's PUB socket drops messages past its high-water mark (1000 by default) without a word; output is
        // batched (see Stream), so no limit here: a slow client delays output, it never loses it.
        iopub.Options.SendHighWatermark = 0;
        shell.Bind(connection.Address(connection.ShellPort));
        control.Bind(connection.Address(connection.ControlPort));
        stdin.Bind(connection.Address(connection.StdinPort));
        iopub.Bind(connection.Address(connection.IopubPort));
        heartbeat.Bind(connection.Address(connection.HbPort));
        shell.ReceiveReady += (_, e) => OnReceive(e.Socket, shellQueue.Add);
        control.ReceiveReady += (_, e) => OnReceive(e.Socket, m => Guarded(control, m, () => HandleControl(m)));
        stdin.ReceiveReady += (_, e) => OnReceive(e.Socket, m => Log($"stdin {m.MsgType} ignored: this kernel never asks for input"));
        outbox.ReceiveReady += (_, e) =>
        {
            while (e.Queue.TryDequeue(out var item, TimeSpan.Zero))
                if (item.Socket is null || item.Message is null) drained.Set(); // the shutdown marker: all before it is sent
                else item.Socket.SendMultipartBytes(codec.Encode(item.Message));
        };
        poller = new NetMQPoller { shell, control, stdin, outbox };
    }

    void Log(string text) { lock (log) log.WriteLine($"[peft-kernel] {text}"); }

    /// <summary>Serves until a shutdown_request. The engine warms up (Roslyn, torch) in the background meanwhile.</summary>
    public void Run()
    {
        var heartbeatThread = new Thread(Heartbeat) { IsBackground = true, Name = "jupyter-heartbeat" };
        var worker = new Thread(Work) { IsBackground = true, Name = "jupyter-shell" };
        heartbeatThread.Start();
        worker.Start();
        // Warm up off the shell thread: kernel_info answers at once, and the first cell waits on the engine's lock.
        new Thread(WarmUp) { IsBackground = true, Name = "roslyn-warm-up" }.Start();
        poller.RunAsync("jupyter-poller");
        Log($"listening on {connection.Transport}://{connection.Ip} (shell {connection.ShellPort}, iopub {connection.IopubPort}, control {connection.ControlPort}, hb {connection.HbPort})");
        stopped.Wait();
        // Let the last replies (shutdown_reply, status idle) leave before the sockets close.
        outbox.Enqueue((null, null));
        drained.Wait(TimeSpan.FromSeconds(2));
        poller.Stop();
        shellQueue.CompleteAdding();
    }

    public void Dispose()
    {
        if (poller.IsRunning) poller.Stop();
        poller.Dispose();
        streamTimer.Dispose();
        foreach (var s in new NetMQSocket[] { shell, control, stdin, iopub, heartbeat }) s.Dispose();
        outbox.Dispose();
    }

    void WarmUp()
    {
        try { var sw = System.Diagnostics.Stopwatch.StartNew(); Engine.WarmUp(); Log($"engine warm in {sw.ElapsedMilliseconds} ms"); }
        catch (Exception e) { Log("warm-up failed (the first cell will show why): " + e.Message); }
    }

    void Heartbeat()
    {
        var frames = new List<byte[]>();
        while (!stopping)
        {
            try
            {
                if (heartbeat.TryReceiveMultipartBytes(TimeSpan.FromMilliseconds(100), ref frames)) heartbeat.SendMultipartBytes(frames);
            }
            catch (ObjectDisposedException) { return; }
            catch (TerminatingException) { return; }
        }
    }

    void OnReceive(NetMQSocket socket, Action<Message> handle)
    {
        var frames = new List<byte[]>();
        while (socket.TryReceiveMultipartBytes(TimeSpan.Zero, ref frames))
        {
            var message = codec.Decode(frames, out var problem);
            if (message is not null && !signatures.Add(message.Signature)) { message = null; problem = "replayed signature (this message was accepted before)"; }
            if (message is null)
            {
                Interlocked.Increment(ref rejected);
                Log($"dropped a message: {problem}");
                continue;
            }
            handle(message);
        }
    }

    void Send(NetMQSocket socket, Message m) => outbox.Enqueue((socket, m));

    void Reply(NetMQSocket socket, Message request, string type, JsonObject content) => Send(socket, Message.ReplyTo(request, type, content, session));

    /// <summary>iopub: the topic frame stands where identities would be.</summary>
    void Publish(string type, JsonObject content, Message? parent)
    {
        var m = new Message
        {
            Identities = { Encoding.UTF8.GetBytes($"kernel.{session}.{type}") },
            Header = Message.NewHeader(type, session),
            ParentHeader = parent is null ? new JsonObject() : (JsonObject)parent.Header.DeepClone(),
            Content = content,
        };
        Send(iopub, m);
    }

    /// <summary>A request whose fields have the wrong JSON type gets an error reply; the exception must never reach the
    /// poller or worker thread (an unhandled exception there ends the process).</summary>
    void Guarded(NetMQSocket socket, Message m, Action handle)
    {
        try { handle(); }
        catch (Exception e)
        {
            Log($"{m.MsgType} failed: {e.Message}");
            Reply(socket, m, ReplyType(m), ErrorContent(e.GetType().Name, e.Message, new[] { $"{e.GetType().Name}: {e.Message}" }));
            Publish("status", new JsonObject { ["execution_state"] = "idle" }, m);
        }
    }

    static string ReplyType(Message m) => m.MsgType.EndsWith("_request", StringComparison.Ordinal) ? m.MsgType[..^"_request".Length] + "_reply" : m.MsgType + "_reply";

    // ---- control: handled on the poller thread, even while a cell runs ------------------------------------

    void HandleControl(Message m)
    {
        Publish("status", new JsonObject { ["execution_state"] = "busy" }, m);
        switch (m.MsgType)
        {
            case "interrupt_request":
                Log("interrupt requested");
                try { currentCell?.CancelAsync(); }
                catch (ObjectDisposedException) { } // the cell just finished
                Engine.Interrupt();
                Reply(control, m, "interrupt_reply", new JsonObject { ["status"] = "ok" });
                break;
            case "shutdown_request":
                RestartRequested = Bool(m.Content, "restart", false);
                Log(RestartRequested ? "shutdown requested (restart)" : "shutdown requested");
                Reply(control, m, "shutdown_reply", new JsonObject { ["status"] = "ok", ["restart"] = RestartRequested });
                Publish("status", new JsonObject { ["execution_state"] = "idle" }, m);
                Engine.Interrupt();
                Stop();
                return;
            default:
                HandleCommon(control, m);
                break;
        }
        Publish("status", new JsonObject { ["execution_state"] = "idle" }, m);
    }

    // ---- shell: one request at a time on the worker thread -------------------------------------------------

    void Work()
    {
        foreach (var m in shellQueue.GetConsumingEnumerable())
        {
            if (m.MsgType == "shutdown_request") { Guarded(shell, m, () => HandleControl(m)); continue; }
            Publish("status", new JsonObject { ["execution_state"] = "busy" }, m);
            try
            {
                if (m.MsgType == "execute_request") Execute(m);
                else HandleCommon(shell, m);
            }
            catch (Exception e)
            {
                Log($"{m.MsgType} failed: {e}");
                Reply(shell, m, ReplyType(m), ErrorContent(e.GetType().Name, e.Message, new[] { e.ToString() }));
            }
            Publish("status", new JsonObject { ["execution_state"] = "idle" }, m);
        }
    }

    /// <summary>Requests valid on shell and on control.</summary>
    void HandleCommon(NetMQSocket socket, Message m)
    {
        var c = m.Content;
        switch (m.MsgType)
        {
            case "kernel_info_request": Reply(socket, m, "kernel_info_reply", KernelInfo()); break;
            case "is_complete_request":
                var verdict = Engine.IsComplete(Str(c, "code"));
                var reply = new JsonObject { ["status"] = verdict };
                if (verdict == "incomplete") reply["indent"] = "    ";
                Reply(socket, m, "is_complete_reply", reply);
                break;
            case "complete_request":
                var completion = Engine.Complete(Str(c, "code"), Int(c, "cursor_pos"));
                Reply(socket, m, "complete_reply", new JsonObject
                {
                    ["status"] = "ok",
                    ["matches"] = new JsonArray(completion.Matches.Select(x => (JsonNode?)x).ToArray()),
                    ["cursor_start"] = completion.CursorStart,
                    ["cursor_end"] = completion.CursorEnd,
                    ["metadata"] = new JsonObject(),
                });
                break;
            case "inspect_request":
                var found = Engine.Inspect(Str(c, "code"), Int(c, "cursor_pos"));
                var data = new JsonObject();
                if (found is not null) data["text/plain"] = found.Documentation is null ? found.Signature : found.Signature + "\n\n" + found.Documentation;
                Reply(socket, m, "inspect_reply", new JsonObject { ["status"] = "ok", ["found"] = found is not null, ["data"] = data, ["metadata"] = new JsonObject() });
                break;
            case "comm_info_request": Reply(socket, m, "comm_info_reply", new JsonObject { ["status"] = "ok", ["comms"] = new JsonObject() }); break;
            case "history_request": Reply(socket, m, "history_reply", new JsonObject { ["status"] = "ok", ["history"] = new JsonArray() }); break;
            case "comm_open":
                // No comm targets: close it again, as the protocol asks.
                Publish("comm_close", new JsonObject { ["comm_id"] = Str(c, "comm_id"), ["data"] = new JsonObject() }, m);
                break;
            case "comm_msg" or "comm_close": break;
            default:
                Log($"unsupported request {m.MsgType} ignored");
                break;
        }
    }

    void Execute(Message m)
    {
        // Every field is read (and its type checked) before anything is sent: a bad one gets the one error reply.
        var code = Str(m.Content, "code");
        bool silent = Bool(m.Content, "silent", false);
        bool storeHistory = !silent && Bool(m.Content, "store_history", true);
        bool stopOnError = Bool(m.Content, "stop_on_error", true);
        if (storeHistory) executionCount++;
        int count = executionCount;
        if (!silent) Publish("execute_input", new JsonObject { ["code"] = code, ["execution_count"] = count }, m);

        currentParent = m;
        CellResult result;
        using (var cell = new CancellationTokenSource())
        {
            currentCell = cell;
            try { result = Engine.Execute(code, cell.Token); }
            finally { currentCell = null; FlushStreams(); }
        }
        if (result.Status == CellStatus.Ok)
        {
            if (result.Value is { } value && !silent)
                Publish("execute_result", new JsonObject { ["execution_count"] = count, ["data"] = Bundle(value), ["metadata"] = new JsonObject() }, m);
            Reply(shell, m, "execute_reply", new JsonObject
            {
                ["status"] = "ok", ["execution_count"] = count, ["user_expressions"] = new JsonObject(), ["payload"] = new JsonArray(),
            });
            return;
        }
        // A cell that ignores Cancellation cannot be stopped inside .NET: the kernel ends its process. The error itself says
        // so (one message, said once), rather than a second stream line contradicting the engine's.
        bool endProcess = result.Status == CellStatus.Interrupted && Engine.AbandonedCellRunning;
        if (endProcess)
        {
            var why = result.ErrorValue + "; the kernel ends its process to stop it, and Jupyter restarts the kernel (variables are lost)";
            result = result with { ErrorValue = why, Traceback = new[] { "KeyboardInterrupt: " + why } };
        }
        var error = ErrorContent(result.ErrorName, result.ErrorValue, result.TracebackLines);
        Publish("error", (JsonObject)error.DeepClone(), m);
        error["execution_count"] = count;
        Reply(shell, m, "execute_reply", error);
        if (stopOnError) AbortQueuedExecutions();
        if (endProcess)
        {
            Log("an interrupted cell would not stop: ending the kernel process so that it stops");
            AbandonedCell = true;
            Stop();
        }
    }

    void Stop()
    {
        FlushStreams();
        stopping = true;
        stopped.Set();
    }

    /// <summary>After an error, execute requests already queued are answered "aborted" (as ipykernel does), so a
    /// front end running all cells stops at the failing one. The reply carries no execution_count: those cells never
    /// ran, and a front end would otherwise label them with the failed cell's number.</summary>
    void AbortQueuedExecutions()
    {
        var keep = new List<Message>();
        while (shellQueue.TryTake(out var queued))
        {
            if (queued.MsgType != "execute_request") { keep.Add(queued); continue; }
            Publish("status", new JsonObject { ["execution_state"] = "busy" }, queued);
            Reply(shell, queued, "execute_reply", new JsonObject { ["status"] = "aborted" });
            Publish("status", new JsonObject { ["execution_state"] = "idle" }, queued);
        }
        foreach (var k in keep) shellQueue.Add(k);
    }

    static JsonObject ErrorContent(string ename, string evalue, IEnumerable<string> traceback) => new()
    {
        ["status"] = "error", ["ename"] = ename, ["evalue"] = evalue,
        ["traceback"] = new JsonArray(traceback.Select(t => (JsonNode?)t).ToArray()),
    };

    static JsonObject Bundle(IReadOnlyDictionary<string, string> data)
    {
        var o = new JsonObject();
        foreach (var (k, v) in data) o[k] = v;
        return o;
    }

    // Request fields: absent or null gives the default; any other JSON type is the client's error, named in the reply.
    static string Str(JsonObject c, string key) => Field(c, key, "")!;
    static int Int(JsonObject c, string key) => Field(c, key, 0);
    static bool Bool(JsonObject c, string key, bool absent) => Field(c, key, absent);

    static T Field<T>(JsonObject c, string key, T absent)
    {
        var node = c[key];
        if (node is null) return absent;
        if (node is JsonValue v && v.TryGetValue<T>(out var value)) return value;
        throw new ArgumentException($"content field \"{key}\" must be {(typeof(T) == typeof(string) ? "a string" : typeof(T) == typeof(bool) ? "true or false" : "an integer")}, got {node.GetValueKind()} {node.ToJsonString()}");
    }

    JsonObject KernelInfo() => new()
    {
        ["status"] = "ok",
        ["protocol_version"] = Message.ProtocolVersion,
        ["implementation"] = "peft-workbench",
        ["implementation_version"] = Workbench.Version,
        ["language_info"] = LanguageInfo(),
        ["banner"] = $"C# (PeftWorkbench {Workbench.Version}, Roslyn scripting, .NET {Environment.Version})",
        ["help_links"] = new JsonArray(),
        ["debugger"] = false,
    };

    public static JsonObject LanguageInfo() => new()
    {
        ["name"] = LanguageName,
        ["version"] = typeof(Microsoft.CodeAnalysis.CSharp.CSharpCompilation).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "",
        ["mimetype"] = "text/x-csharp",
        ["file_extension"] = ".cs",
        ["pygments_lexer"] = "csharp",
        ["codemirror_mode"] = "text/x-csharp",
    };

    // ---- IOutputSink: the engine's output, sent with the running request as parent ----------------------------

    void IOutputSink.Stream(string name, string text)
    {
        lock (streamGate)
        {
            var parent = currentParent;
            // One pending run of text: a change of stream or request sends what is pending first, so order holds.
            if (pendingText.Length > 0 && (pendingName != name || !ReferenceEquals(pendingParent, parent))) FlushStreamsLocked();
            pendingName = name;
            pendingParent = parent;
            pendingText.Append(text);
            if (pendingText.Length >= StreamChunkChars) FlushStreamsLocked();
            else if (!streamTimerArmed) { streamTimerArmed = true; streamTimer.Change(StreamInterval, Timeout.InfiniteTimeSpan); }
        }
    }

    /// <summary>Sends the stream text waiting for its interval (before any other output of the cell, and at its end).</summary>
    void FlushStreams() { lock (streamGate) FlushStreamsLocked(); }

    void FlushStreamsLocked()
    {
        streamTimerArmed = false;
        if (pendingText.Length == 0) return;
        Publish("stream", new JsonObject { ["name"] = pendingName, ["text"] = pendingText.ToString() }, pendingParent);
        pendingText.Clear();
    }

    void IOutputSink.Display(IReadOnlyDictionary<string, string> data, string? displayId, bool update)
    {
        FlushStreams();
        var content = new JsonObject { ["data"] = Bundle(data), ["metadata"] = new JsonObject() };
        if (displayId is not null) content["transient"] = new JsonObject { ["display_id"] = displayId };
        Publish(update ? "update_display_data" : "display_data", content, currentParent);
    }
}
