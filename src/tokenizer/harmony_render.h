#pragma once
// Harmony rendering as a list of pieces: formatting tokens and text runs. Text and token
// renderings both come from it, so they cannot drift apart; each text run is encoded on its own,
// as the reference's render_text_into calls are.
#include <string>
#include <vector>

#include "ember/harmony.h"

namespace ember::harmony::detail {

struct Piece {
  bool special;      // a formatting token ("<|start|>"), else ordinary text
  std::string text;
};
using Pieces = std::vector<Piece>;

// `has_function_tools`: the conversation's developer message defines "functions", which adds a
// line to the system message's channel section.
void render_message(const Message& message, bool has_function_tools, Pieces& out);
void render_conversation(const Conversation& conversation, const RenderConversationConfig& config,
                         Pieces& out);
void render_completion_prompt(Role next_turn_role, Pieces& out);  // <|start|>{role}
// Whether the training rendering ends in <|return|>: the last message is an assistant's final.
bool ends_in_final_answer(const Conversation& conversation);

inline constexpr const char* kStart = "<|start|>";
inline constexpr const char* kMessage = "<|message|>";
inline constexpr const char* kEnd = "<|end|>";
inline constexpr const char* kReturn = "<|return|>";
inline constexpr const char* kCall = "<|call|>";
inline constexpr const char* kChannel = "<|channel|>";
inline constexpr const char* kConstrain = "<|constrain|>";

}  // namespace ember::harmony::detail
