using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using NetMQ;
using NetMQ.Sockets;
using PeftWorkbench.Fuzz;
using PeftWorkbench.Kernel.Protocol;

namespace PeftWorkbench.Kernel.Tests.Fuzz;

/// <summary>Hostile messages over real sockets: correctly signed messages with wrongly typed fields, duplicated keys,
/// truncated and flipped frames, replays, floods. Each must end in at most one error reply (or a silent drop, counted)
/// and leave the kernel answering.</summary>
public class MessageFuzzTests(KernelFixture fx) : IClassFixture<KernelFixture>
{
    readonly KernelClient client = fx.Client;
    JupyterKernel Kernel => fx.Running.Kernel;
    static readonly TimeSpan Answer = TimeSpan.FromSeconds(90); // the first cell waits for Roslyn to warm up

    static string Header(string msgTypeJson, string? extra = null) =>
        $"{{\"msg_id\":\"{Guid.NewGuid()}\",\"session\":\"fuzz\",\"username\":\"fuzz\",\"date\":\"2026-01-01T00:00:00.000000Z\",\"msg_type\":{msgTypeJson},\"version\":\"5.3\"{extra}}}";

    /// <summary>The four JSON parts as given, signed with the kernel's key (so they reach the handlers).</summary>
    List<byte[]> Signed(string header, string content, string parent = "{}", string metadata = "{}")
    {
        var parts = new[] { header, parent, metadata, content }.Select(Encoding.UTF8.GetBytes).ToArray();
        var frames = new List<byte[]> { Encoding.ASCII.GetBytes(Message.Delimiter), Encoding.ASCII.GetBytes(client.Codec.Sign(parts)) };
        frames.AddRange(parts);
        return frames;
    }

    /// <summary>Sends the frames, then a kernel_info probe on the same socket; returns the replies that came before the
    /// probe's (replies on one DEALER come in order). Fails if the kernel stops answering.</summary>
    List<Message> SendThenProbe(DealerSocket socket, List<byte[]> frames, string what)
    {
        socket.SendMultipartBytes(frames);
        var probe = client.Send(socket, "kernel_info_request", new JsonObject());
        var before = new List<Message>();
        while (true)
        {
            var m = client.Receive(socket, Answer) ?? throw new Xunit.Sdk.XunitException($"the kernel stopped answering after {what}");
            if (m.ParentHeader["msg_id"]?.GetValue<string>() == probe.MsgId) return before;
            before.Add(m);
        }
    }

    static string S(JsonNode? n) => n?.GetValue<string>() ?? "";

    [Fact]
    public void WronglyTypedFieldsGetOneErrorReplyOrAreDropped()
    {
        // The seven cases that aborted the process (rc -6), then more of the same kind.
        int rejectedBefore = Kernel.RejectedMessages;
        foreach (var socket in new[] { client.Shell, client.Control })
        {
            Assert.Empty(SendThenProbe(socket, Signed(Header("5"), "{}"), "msg_type 5"));
            Assert.Empty(SendThenProbe(socket, Signed(Header("\"kernel_info_request\"", ",\"msg_type\":\"kernel_info_request\""), "{}"), "two msg_type keys"));
        }
        Assert.Equal(rejectedBefore + 4, Kernel.RejectedMessages);

        foreach (var (type, content, field) in new[]
        {
            ("complete_request", "{\"code\":\"Con\",\"cursor_pos\":\"3\"}", "cursor_pos"),
            ("is_complete_request", "{\"code\":5}", "code"),
            ("comm_open", "{\"comm_id\":5,\"target_name\":\"x\",\"data\":{}}", "comm_id"),
            ("shutdown_request", "{\"restart\":\"yes\"}", "restart"),
        })
        {
            var replies = SendThenProbe(client.Control, Signed(Header($"\"{type}\""), content), type);
            var reply = Assert.Single(replies);
            Assert.Equal("error", S(reply.Content["status"]));
            Assert.Contains($"\"{field}\"", S(reply.Content["evalue"]));
        }
        Assert.True(fx.Running.Thread.IsAlive); // the wrongly typed shutdown_request did not stop it
    }

    [Fact]
    public void StopOnErrorOfTheWrongTypeGivesOneReply()
    {
        var content = "{\"code\":\"throw new Exception(\\\"x\\\");\",\"silent\":false,\"stop_on_error\":\"x\"}";
        var replies = SendThenProbe(client.Shell, Signed(Header("\"execute_request\""), content), "stop_on_error \"x\"");
        var reply = Assert.Single(replies);
        Assert.Equal("execute_reply", reply.MsgType);
        Assert.Equal("error", S(reply.Content["status"]));
        Assert.Contains("stop_on_error", S(reply.Content["evalue"]));
    }

    [Fact]
    public void ReplayedMessagesAreRefused()
    {
        var name = "replayed" + Guid.NewGuid().ToString("N")[..6];
        var frames = Signed(Header("\"execute_request\""), $"{{\"code\":\"static int {name}; {name}++;\",\"silent\":false}}");
        int rejectedBefore = Kernel.RejectedMessages;
        for (int i = 0; i < 3; i++) SendThenProbe(client.Shell, frames, "a replay");
        Assert.Equal(rejectedBefore + 2, Kernel.RejectedMessages);
        var value = client.Request(client.Shell, "execute_request", new JsonObject { ["code"] = name }, out var iopub);
        Assert.Equal("1", S(iopub.Single(m => m.MsgType == "execute_result").Content["data"]!["text/plain"]));

        // The record is bounded: the oldest signatures are forgotten first.
        var history = new SignatureHistory(capacity: 3);
        Assert.True(history.Add("a") && history.Add("b") && history.Add("c"));
        Assert.False(history.Add("a"));
        Assert.True(history.Add("d"));
        Assert.True(history.Add("a")); // forgotten
        FuzzTable.Record("messages", "replayed signed message", 3, 3, "2");
    }

    [Fact]
    public void AFloodOfOutputArrivesWholeInFewMessages()
    {
        const int lines = 200_000;
        var reply = client.Request(client.Shell, "execute_request", new JsonObject { ["code"] = $"for (int i = 0; i < {lines}; i++) Console.WriteLine(i);" }, out var iopub);
        Assert.Equal("ok", S(reply.Content["status"]));
        var streams = iopub.Where(m => m.MsgType == "stream").ToList();
        var text = string.Concat(streams.Select(m => S(m.Content["text"])));
        Assert.Equal(Enumerable.Range(0, lines).Sum(i => i.ToString().Length + 1), text.Length);
        Assert.EndsWith($"\n{lines - 1}\n", text);
        // Batching is checked by the message count, not by a stopwatch (issue 26: no test asserts wall-clock time).
        Assert.True(streams.Count < 2_000, $"{streams.Count} stream messages for {lines} lines: output is not batched");
        FuzzTable.Record("messages", $"flood: {lines:N0} printed lines", 1, 1, "4");
    }

    /// <summary>Every request type, every field, every wrong JSON type: one reply at most, never a dead kernel.</summary>
    [Fact]
    public void GeneratedWrongTypesTruncationsAndFlips()
    {
        var wrong = new[] { "5", "-1", "1e300", "true", "null", "[]", "{}", "[1,[2]]", "{\"a\":{}}", "\"x\"", "\"" + new string('y', 10_000) + "\"" };
        var requests = new (string Type, string[] Fields, bool Control)[]
        {
            ("kernel_info_request", new string[0], false), ("is_complete_request", new[] { "code" }, true),
            ("complete_request", new[] { "code", "cursor_pos" }, true), ("inspect_request", new[] { "code", "cursor_pos", "detail_level" }, false),
            ("comm_info_request", new[] { "target_name" }, true), ("history_request", new[] { "hist_access_type", "n" }, false),
            ("comm_open", new[] { "comm_id", "target_name", "data" }, true), ("comm_msg", new[] { "comm_id", "data" }, false),
            ("execute_request", new[] { "code", "silent", "store_history", "stop_on_error", "user_expressions", "allow_stdin" }, false),
            ("shutdown_request", new[] { "restart" }, true), ("interrupt_request", new string[0], true),
        };
        int tried = 0;
        foreach (var (type, fields, onControl) in requests)
            foreach (var field in fields)
                foreach (var value in wrong)
                {
                    var content = new JsonObject();
                    // Valid values for the other fields (a cell that runs quickly; no shutdown that succeeds).
                    foreach (var f in fields.Where(f => f != field)) content[f] = f switch { "code" => "1", "cursor_pos" or "n" or "detail_level" => 0, "silent" => true, "restart" => false, _ => JsonValue.Create("x") };
                    var json = content.ToJsonString().TrimEnd('}');
                    json += (content.Count > 0 ? "," : "") + $"\"{field}\":{value}}}";
                    if (type == "shutdown_request" && value is "true" or "null") continue; // a valid shutdown
                    var socket = onControl ? client.Control : client.Shell;
                    var replies = SendThenProbe(socket, Signed(Header($"\"{type}\""), json), $"{type} {field}={value[..Math.Min(20, value.Length)]}");
                    Assert.True(replies.Count <= 1, $"{type} {field}={value}: {replies.Count} replies");
                    tried++;
                }
        FuzzTable.Record("messages", "wrong JSON type in a request field (signed)", tried, tried, "1, 3");

        // Truncations and byte flips of a valid execute_request: unsigned ones are dropped for their signature, signed
        // ones for their JSON (or run, if still valid); none crashes the kernel or yields two replies.
        var good = Signed(Header("\"execute_request\""), "{\"code\":\"1+1\",\"silent\":true,\"store_history\":false}");
        var rng = new Random(17);
        int cuts = 0, flips = 0;
        for (int part = 2; part < 6; part++)
            foreach (var at in FuzzTable.Offsets(good[part].Length, 12 * FuzzTable.Scale))
            {
                var frames = good.Select(f => (byte[])f.Clone()).ToList();
                frames[part] = frames[part][..at];
                var resigned = Signed(Encoding.UTF8.GetString(frames[2]), Encoding.UTF8.GetString(frames[5]), Encoding.UTF8.GetString(frames[3]), Encoding.UTF8.GetString(frames[4]));
                Assert.Empty(SendThenProbe(client.Shell, frames, $"part {part} cut at {at}").Where(m => m.MsgType == "execute_reply").Skip(1));
                Assert.True(SendThenProbe(client.Shell, resigned, $"part {part} cut at {at}, re-signed").Count <= 1);
                cuts += 2;
            }
        for (int i = 0; i < 40 * FuzzTable.Scale; i++)
        {
            var frames = good.Select(f => (byte[])f.Clone()).ToList();
            int part = rng.Next(2, 6);
            frames[part][rng.Next(frames[part].Length)] = (byte)rng.Next(256);
            var resigned = Signed(Encoding.UTF8.GetString(frames[2]), Encoding.UTF8.GetString(frames[5]), Encoding.UTF8.GetString(frames[3]), Encoding.UTF8.GetString(frames[4]));
            Assert.True(SendThenProbe(client.Shell, resigned, $"flip {i}").Count <= 1);
            flips++;
        }
        // Fewer frames than the protocol needs, no delimiter, empty frames.
        foreach (var n in Enumerable.Range(0, 6))
            Assert.Empty(SendThenProbe(client.Shell, good.Take(n).DefaultIfEmpty(Array.Empty<byte>()).ToList(), $"{n} frames"));
        FuzzTable.Record("messages", "truncated frames (as sent, and re-signed)", cuts, cuts, "1");
        FuzzTable.Record("messages", "byte flips (re-signed)", flips, flips, "1");
        FuzzTable.Record("messages", "too few frames / no delimiter", 6, 6);
        Assert.True(fx.Running.Thread.IsAlive);
    }
}
