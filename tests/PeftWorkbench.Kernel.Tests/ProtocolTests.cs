using System.Text;
using System.Text.Json.Nodes;
using NetMQ;
using PeftWorkbench.Kernel.Protocol;

namespace PeftWorkbench.Kernel.Tests;

public sealed class KernelFixture : IDisposable
{
    internal readonly RunningKernel Running = new();
    internal readonly KernelClient Client;
    public KernelFixture() => Client = new KernelClient(Running.Connection);
    public void Dispose() { Client.Dispose(); Running.Dispose(); }
}

/// <summary>The protocol over real ZeroMQ sockets, with a C# client.</summary>
public class ProtocolTests(KernelFixture fx) : IClassFixture<KernelFixture>
{
    readonly KernelClient client = fx.Client;
    static string S(JsonNode? n) => n?.GetValue<string>() ?? "";

    Message Execute(string code, out List<Message> iopub) =>
        client.Request(client.Shell, "execute_request", new JsonObject
        {
            ["code"] = code, ["silent"] = false, ["store_history"] = true, ["user_expressions"] = new JsonObject(), ["allow_stdin"] = false, ["stop_on_error"] = true,
        }, out iopub);

    [Fact]
    public void KernelInfoOnShellAndControl()
    {
        foreach (var socket in new[] { client.Shell, client.Control })
        {
            var reply = client.Request(socket, "kernel_info_request", new JsonObject(), out var iopub);
            Assert.Equal("kernel_info_reply", reply.MsgType);
            Assert.Equal("5.3", S(reply.Content["protocol_version"]));
            Assert.Equal("5.3", S(reply.Header["version"]));
            Assert.Equal("C#", S(reply.Content["language_info"]!["name"]));
            Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", S(reply.Header["date"]));
            Assert.Equal(new[] { "busy", "idle" }, iopub.Where(m => m.MsgType == "status").Select(m => S(m.Content["execution_state"])));
        }
        Assert.Equal(0, client.Unverified); // every iopub message carried a valid signature
    }

    [Fact]
    public void ExecuteSendsEveryOutputKindInOrder()
    {
        var reply = Execute("Console.WriteLine(\"hello\");\nvar h = display(\"first\");\nh.Update(\"second\");\n6 * 7", out var iopub);
        Assert.Equal("ok", S(reply.Content["status"]));
        int count = reply.Content["execution_count"]!.GetValue<int>();
        Assert.True(count >= 1);
        Assert.Equal(new[] { "status", "execute_input", "stream", "display_data", "update_display_data", "execute_result", "status" }, iopub.Select(m => m.MsgType));
        Assert.Equal(count, iopub[1].Content["execution_count"]!.GetValue<int>());
        Assert.Equal("hello\n", S(iopub[2].Content["text"]));
        Assert.Equal("stdout", S(iopub[2].Content["name"]));
        var id = S(iopub[3].Content["transient"]!["display_id"]);
        Assert.Equal("first", S(iopub[3].Content["data"]!["text/plain"]));
        Assert.Equal(id, S(iopub[4].Content["transient"]!["display_id"]));
        Assert.Equal("second", S(iopub[4].Content["data"]!["text/plain"]));
        Assert.Equal("42", S(iopub[5].Content["data"]!["text/plain"]));
        Assert.Equal(count, iopub[5].Content["execution_count"]!.GetValue<int>());

        var next = Execute("var unused = 0;", out _);
        Assert.Equal(count + 1, next.Content["execution_count"]!.GetValue<int>());
    }

    [Fact]
    public void ErrorsGoToIopubAndTheReply()
    {
        var reply = Execute("throw new ArgumentException(\"bad value\");", out var iopub);
        Assert.Equal("error", S(reply.Content["status"]));
        Assert.Equal("ArgumentException", S(reply.Content["ename"]));
        var error = Assert.Single(iopub, m => m.MsgType == "error");
        Assert.Equal("bad value", S(error.Content["evalue"]));
        Assert.NotEmpty(error.Content["traceback"]!.AsArray());
    }

    [Fact]
    public void CellsQueuedBehindAnErrorAreAbortedWithoutAnExecutionCount()
    {
        // The second request is queued while the first still sleeps; the first's error aborts it.
        var failing = client.Send(client.Shell, "execute_request", new JsonObject { ["code"] = "Thread.Sleep(500); throw new Exception(\"first\");", ["stop_on_error"] = true });
        var queued = client.Send(client.Shell, "execute_request", new JsonObject { ["code"] = "1 + 1" });
        var first = client.Receive(client.Shell)!;
        var second = client.Receive(client.Shell)!;
        Assert.Equal(failing.MsgId, S(first.ParentHeader["msg_id"]));
        Assert.Equal("error", S(first.Content["status"]));
        Assert.Equal(queued.MsgId, S(second.ParentHeader["msg_id"]));
        Assert.Equal("aborted", S(second.Content["status"]));
        // Never ran, so no number: a front end shows "In [ ]", not the failed cell's number.
        Assert.False(second.Content.ContainsKey("execution_count"), second.Content.ToJsonString());
    }

    [Fact]
    public void IsCompleteCompleteInspectCommInfoHistory()
    {
        var r = client.Request(client.Shell, "is_complete_request", new JsonObject { ["code"] = "if (true) {" }, out _);
        Assert.Equal("incomplete", S(r.Content["status"]));
        r = client.Request(client.Shell, "complete_request", new JsonObject { ["code"] = "Console.WriteL", ["cursor_pos"] = 14 }, out _);
        Assert.Contains("WriteLine", r.Content["matches"]!.AsArray().Select(S));
        Assert.Equal(8, r.Content["cursor_start"]!.GetValue<int>());
        Assert.Equal(14, r.Content["cursor_end"]!.GetValue<int>());
        r = client.Request(client.Shell, "inspect_request", new JsonObject { ["code"] = "Math.Sqrt(2)", ["cursor_pos"] = 7, ["detail_level"] = 0 }, out _);
        Assert.True(r.Content["found"]!.GetValue<bool>());
        Assert.Contains("Sqrt", S(r.Content["data"]!["text/plain"]));
        r = client.Request(client.Shell, "comm_info_request", new JsonObject(), out _);
        Assert.Empty(r.Content["comms"]!.AsObject());
        r = client.Request(client.Shell, "history_request", new JsonObject { ["hist_access_type"] = "tail", ["n"] = 10, ["output"] = false, ["raw"] = true }, out _);
        Assert.Equal("ok", S(r.Content["status"]));
        Assert.Empty(r.Content["history"]!.AsArray());
    }

    [Fact]
    public void BadOrMissingSignaturesAreDroppedNeverRun()
    {
        int rejectedBefore = fx.Running.Kernel.RejectedMessages;
        var bad = client.NewMessage("execute_request", new JsonObject { ["code"] = "var fromBadSignature = 1;", ["silent"] = false });
        var frames = client.Codec.Encode(bad);
        int sig = frames.FindIndex(f => Encoding.ASCII.GetString(f) == Message.Delimiter) + 1;
        var forged = frames.ToList();
        forged[sig] = Encoding.ASCII.GetBytes(new string('0', 64));
        client.Shell.SendMultipartBytes(forged);
        var missing = frames.ToList();
        missing[sig] = Array.Empty<byte>();
        client.Shell.SendMultipartBytes(missing);

        // Shell is handled in order: the first reply that comes back is for the good request after them.
        var reply = Execute("fromBadSignature", out _);
        Assert.Equal("error", S(reply.Content["status"]));
        Assert.Contains("CS0103", S(reply.Content["evalue"]));
        Assert.Equal(rejectedBefore + 2, fx.Running.Kernel.RejectedMessages);
    }

    [Fact]
    public void InterruptStopsALongCell()
    {
        var request = client.Send(client.Shell, "execute_request", new JsonObject
        {
            ["code"] = "Console.WriteLine(\"running\");\nwhile (true) { Cancellation.ThrowIfCancellationRequested(); Thread.Sleep(5); }", ["silent"] = false,
        });
        // Interrupt once the cell is really running (it printed), not while it waits for the engine.
        Assert.NotNull(client.WaitFor(m => m.MsgType == "stream" && S(m.ParentHeader["msg_id"]) == request.MsgId, KernelClient.Timeout));
        var interrupt = client.Request(client.Control, "interrupt_request", new JsonObject(), out _);
        Assert.Equal("interrupt_reply", interrupt.MsgType);
        var reply = client.Receive(client.Shell)!;
        Assert.Equal(request.MsgId, S(reply.ParentHeader["msg_id"]));
        Assert.Equal("error", S(reply.Content["status"]));
        Assert.Equal("KeyboardInterrupt", S(reply.Content["ename"]));
        Assert.Equal("ok", S(Execute("1 + 1", out _).Content["status"])); // still serving
    }

    [Fact]
    public void HeartbeatEchoes()
    {
        client.Heartbeat.SendFrame("ping");
        Assert.True(client.Heartbeat.TryReceiveFrameString(KernelClient.Timeout, out var echo));
        Assert.Equal("ping", echo);
    }
}

public class ShutdownTests
{
    [Fact]
    public void ShutdownWithRestartRepliesAndStopsServing()
    {
        using var running = new RunningKernel();
        using var client = new KernelClient(running.Connection);
        var reply = client.Request(client.Control, "shutdown_request", new JsonObject { ["restart"] = true }, out _);
        Assert.Equal("shutdown_reply", reply.MsgType);
        Assert.True(reply.Content["restart"]!.GetValue<bool>());
        Assert.True(running.Thread.Join(KernelClient.Timeout));
        Assert.True(running.Kernel.RestartRequested);
    }
}
