#pragma once
// Actions for the world model (Matrix-Game-2's conditioning inputs): per frame, a multi-hot
// keyboard vector over the model's key set and a mouse (camera) delta.
//
// Tensor layout follows Matrix-Game-2: keyboard [B, frames, num_keys] (key order of the
// ActionSpace: forward, back, left, right, then the extra keys), mouse [B, frames, 2] holding
// (pitch, yaw) = (dy, dx): dy > 0 looks up, dx > 0 looks right (its `I`/`L` camera keys).
//
// Text form, one frame per line (recording and replay):
//     # comment
//     W              <- keys only, mouse 0 0
//     W+D 0.1 0      <- keys, then mouse dx dy
//     . 0 -0.1       <- '.' = no key
// and a compact one-line form with frames separated by spaces: "W W W+D . S@0.1,0" (mouse after
// '@' as dx,dy). Key symbols are case-insensitive.
#include <string>
#include <string_view>
#include <vector>

#include "ember/core/tensor.h"

namespace ember::world {

struct KeySpec {
  std::string name;    // "forward", "jump", ...
  std::string symbol;  // text-form symbol: "W", "Space", ... (no spaces, '+', '@', '.', '#')
  char terminal = 0;   // terminal key that presses it (0: none)
};

struct Mouse {
  float dx = 0.f;  // yaw, right positive
  float dy = 0.f;  // pitch, up positive
  bool operator==(const Mouse&) const = default;
};

struct Action {
  std::vector<uint8_t> keys;  // multi-hot, one entry per key of the ActionSpace
  Mouse mouse;
  bool operator==(const Action&) const = default;
};

struct ActionTensors {
  Tensor keyboard;  // f32 [1, frames, num_keys]
  Tensor mouse;     // f32 [1, frames, 2] as (dy, dx)
};

class ActionSpace {
 public:
  // The four movement keys (forward W, back S, left A, right D) then `extra_keys`.
  explicit ActionSpace(std::vector<KeySpec> extra_keys = {}, float camera_step = 0.1f);

  int64_t num_keys() const { return int64_t(keys_.size()); }
  const std::vector<KeySpec>& keys() const { return keys_; }
  float camera_step() const { return camera_step_; }
  // Index of a key by name or symbol (case-insensitive); an unknown key is an error that lists
  // the known ones.
  int64_t key_index(std::string_view name_or_symbol) const;

  Action idle() const;  // no key, no mouse movement
  // Checks the key vector's length and values and that the mouse is finite.
  void validate(const Action& a, int64_t frame = -1) const;

  // From the bytes a raw-mode terminal delivered during one frame: w/a/s/d and the arrow keys
  // move (up = forward), i/k/j/l turn the view by camera_step (i up, k down, j left, l right),
  // extra keys by their `terminal` char. Other bytes are ignored (a terminal sends plenty).
  Action from_terminal(std::string_view bytes) const;

  // One frame <-> one line of the text form.
  std::string format_frame(const Action& a) const;
  Action parse_frame(std::string_view line, int64_t line_no = 1) const;
  // A whole recording; errors name the line ("actions line 3: unknown key 'Q' ...").
  std::string format(const std::vector<Action>& actions) const;
  std::vector<Action> parse(std::string_view text) const;
  // The compact one-line form.
  std::string format_compact(const std::vector<Action>& actions) const;
  std::vector<Action> parse_compact(std::string_view text) const;

  ActionTensors to_tensors(const std::vector<Action>& actions) const;
  std::vector<Action> from_tensors(const Tensor& keyboard, const Tensor& mouse) const;

 private:
  Action parse_token(std::string_view keys, int64_t line_no, const char* where) const;
  std::vector<KeySpec> keys_;
  float camera_step_;
};

// Reads/writes the line form from/to a file; errors name the file.
std::vector<Action> load_actions(const ActionSpace& space, const std::string& path);
void save_actions(const ActionSpace& space, const std::vector<Action>& actions,
                  const std::string& path);

}  // namespace ember::world
