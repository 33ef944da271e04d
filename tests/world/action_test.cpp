#include "ember/world/action.h"

#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"

namespace ember::world {
namespace {

ActionSpace space() { return ActionSpace({{"jump", "Space", ' '}, {"attack", "F", 'f'}}); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(WorldAction, KeySetAndIndices) {
  auto s = space();
  ASSERT_EQ(s.num_keys(), 6);
  EXPECT_EQ(s.key_index("W"), 0);
  EXPECT_EQ(s.key_index("back"), 1);
  EXPECT_EQ(s.key_index("a"), 2);
  EXPECT_EQ(s.key_index("D"), 3);
  EXPECT_EQ(s.key_index("space"), 4);
  EXPECT_EQ(s.key_index("attack"), 5);
  std::string e = error_of([&] { s.key_index("Q"); });
  EXPECT_NE(e.find("unknown key 'Q'"), std::string::npos) << e;
  EXPECT_NE(e.find("W, S, A, D, Space, F"), std::string::npos) << e;
  EXPECT_THROW(ActionSpace(std::vector<KeySpec>{{"fwd", "w"}}), Error);           // clashes with W
  EXPECT_THROW(ActionSpace(std::vector<KeySpec>{{"look", "L", 'l'}}), Error);     // l turns the camera
  EXPECT_THROW(ActionSpace(std::vector<KeySpec>{{"bad", "a+b"}}), Error);
}

TEST(WorldAction, FromTerminal) {
  auto s = space();
  Action a = s.from_terminal("wd");
  EXPECT_EQ(a.keys, (std::vector<uint8_t>{1, 0, 0, 1, 0, 0}));
  EXPECT_EQ(a.mouse.dx, 0.f);
  a = s.from_terminal("\x1b[A\x1b[D");  // up, left arrows
  EXPECT_EQ(a.keys, (std::vector<uint8_t>{1, 0, 1, 0, 0, 0}));
  a = s.from_terminal("\x1bOB");  // down arrow, application mode
  EXPECT_EQ(a.keys, (std::vector<uint8_t>{0, 1, 0, 0, 0, 0}));
  a = s.from_terminal("iiL f");  // look up (held), right; attack; jump
  EXPECT_FLOAT_EQ(a.mouse.dy, 0.1f);
  EXPECT_FLOAT_EQ(a.mouse.dx, 0.1f);
  EXPECT_EQ(a.keys, (std::vector<uint8_t>{0, 0, 0, 0, 1, 1}));
  a = s.from_terminal("jk");
  EXPECT_FLOAT_EQ(a.mouse.dx, -0.1f);
  EXPECT_FLOAT_EQ(a.mouse.dy, -0.1f);
  EXPECT_EQ(s.from_terminal("xyz\x1b[Z"), s.idle());  // unmapped bytes are ignored
}

TEST(WorldAction, TextRoundTrip) {
  auto s = space();
  std::vector<Action> acts = s.parse("W\nW\nW+D 0.1 0\n. 0 -0.25\n# comment\n\nS+Space+F\n");
  ASSERT_EQ(acts.size(), 5u);
  EXPECT_EQ(acts[2].keys, (std::vector<uint8_t>{1, 0, 0, 1, 0, 0}));
  EXPECT_FLOAT_EQ(acts[2].mouse.dx, 0.1f);
  EXPECT_FLOAT_EQ(acts[3].mouse.dy, -0.25f);
  EXPECT_EQ(acts[4].keys, (std::vector<uint8_t>{0, 1, 0, 0, 1, 1}));
  EXPECT_EQ(s.parse(s.format(acts)), acts);
  EXPECT_EQ(s.format_compact(acts), "W W W+D@0.1,0 .@0,-0.25 S+Space+F");
  EXPECT_EQ(s.parse_compact(s.format_compact(acts)), acts);
  EXPECT_EQ(s.parse_compact("w w d d . s").size(), 6u);
  // Odd floats survive the round trip bit-exactly.
  acts[0].mouse = {1.f / 3.f, -1e-7f};
  EXPECT_EQ(s.parse(s.format(acts)), acts);
  EXPECT_EQ(s.parse_compact(s.format_compact(acts)), acts);
}

TEST(WorldAction, MalformedInputNamesTheLine) {
  auto s = space();
  auto err = [&](const std::string& text) { return error_of([&] { s.parse(text); }); };
  EXPECT_NE(err("W\nW\nQ\n").find("actions line 3: unknown key 'Q'"), std::string::npos);
  EXPECT_NE(err("W\nW 0.1\n").find("actions line 2: expected 'KEYS' or 'KEYS dx dy'"),
            std::string::npos);
  EXPECT_NE(err("# x\nW abc 0\n").find("actions line 2: mouse dx 'abc' is not a number"),
            std::string::npos);
  EXPECT_NE(err("W 0 nan\n").find("actions line 1: mouse dy is nan"), std::string::npos);
  EXPECT_NE(err(".\n.\n. inf 0\n").find("actions line 3: mouse dx is inf"), std::string::npos);
  EXPECT_NE(err("W+\n").find("actions line 1: empty key name"), std::string::npos);
  EXPECT_NE(err("W+W\n").find("actions line 1: key 'W' given twice"), std::string::npos);
  EXPECT_NE(err("W 1 2 3\n").find("4 fields"), std::string::npos);
  auto cerr = [&](const std::string& text) { return error_of([&] { s.parse_compact(text); }); };
  EXPECT_NE(cerr("W W X").find("actions frame 3: unknown key 'X'"), std::string::npos);
  EXPECT_NE(cerr("W@1").find("actions frame 1: mouse '1' must be dx,dy"), std::string::npos);
  EXPECT_NE(cerr("W@1,-inf").find("actions frame 1: mouse dy is -inf"), std::string::npos);
}

TEST(WorldAction, ValidationOfActionsAndTensors) {
  auto s = space();
  Action a = s.idle();
  a.mouse.dx = std::numeric_limits<float>::quiet_NaN();
  std::string e = error_of([&] { s.to_tensors({s.idle(), a}); });
  EXPECT_NE(e.find("action of frame 1: mouse"), std::string::npos) << e;
  Action b = s.idle();
  b.keys.pop_back();
  EXPECT_NE(error_of([&] { s.format({b}); }).find("5 key entries, the action space has 6"),
            std::string::npos);
  Action c = s.idle();
  c.keys[0] = 2;
  EXPECT_THROW(s.to_tensors({c}), Error);

  std::vector<Action> acts = s.parse_compact("W W+D@0.1,0 .@0,-0.1 Space");
  ActionTensors t = s.to_tensors(acts);
  ASSERT_EQ(t.keyboard.shape(), (Shape{1, 4, 6}));
  ASSERT_EQ(t.mouse.shape(), (Shape{1, 4, 2}));
  auto kb = t.keyboard.to_vector<float>();
  EXPECT_EQ(kb[6 + 3], 1.f);  // frame 1: right
  auto ms = t.mouse.to_vector<float>();
  EXPECT_FLOAT_EQ(ms[2 + 1], 0.1f);  // frame 1: yaw (dx) in column 1
  EXPECT_FLOAT_EQ(ms[4 + 0], -0.1f); // frame 2: pitch (dy) in column 0
  EXPECT_EQ(s.from_tensors(t.keyboard, t.mouse), acts);
  Tensor bad = t.keyboard.contiguous();
  bad = mul(bad, 0.5);
  EXPECT_THROW(s.from_tensors(bad, t.mouse), Error);
  EXPECT_THROW(s.from_tensors(t.mouse, t.keyboard), Error);
}

TEST(WorldAction, FileRoundTripAndErrorsNameTheFile) {
  auto s = space();
  test::TempDir dir;
  auto acts = s.parse_compact("W W W+D@0.1,0 . S");
  save_actions(s, acts, dir.file("a.txt"));
  EXPECT_EQ(load_actions(s, dir.file("a.txt")), acts);
  {
    std::ofstream(dir.file("bad.txt")) << "W\nW\nW 0 0\nZ\n";
  }
  std::string e = error_of([&] { load_actions(s, dir.file("bad.txt")); });
  EXPECT_NE(e.find("bad.txt: actions line 4: unknown key 'Z'"), std::string::npos) << e;
  EXPECT_THROW(load_actions(s, dir.file("missing.txt")), Error);
}

}  // namespace
}  // namespace ember::world
