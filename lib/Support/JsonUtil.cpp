//===- JsonUtil.cpp - Shared helpers for reading JSON ---------------------===//

#include "JsonUtil.h"

#include "qfx/Support/Error.h"

#include <set>
#include <vector>

using json = nlohmann::json;

std::string qfx::stripJsonExceptionTag(const char *What) {
  llvm::StringRef S(What);
  if (S.startswith("[json.exception.")) {
    size_t End = S.find("] ");
    if (End != llvm::StringRef::npos)
      S = S.drop_front(End + 2);
  }
  return S.str();
}

json qfx::parseJsonTrackingDuplicates(llvm::StringRef Text,
                                      std::string &DuplicateKey) {
  std::vector<std::set<std::string>> Open;
  json::parser_callback_t Track = [&](int, json::parse_event_t Ev,
                                      json &Parsed) {
    if (Ev == json::parse_event_t::object_start) {
      Open.emplace_back();
    } else if (Ev == json::parse_event_t::object_end) {
      if (!Open.empty())
        Open.pop_back();
    } else if (Ev == json::parse_event_t::key && !Open.empty() &&
               Parsed.is_string()) {
      const std::string &K = Parsed.get_ref<const std::string &>();
      if (!Open.back().insert(K).second && DuplicateKey.empty())
        DuplicateKey = K;
    }
    return true;
  };
  return json::parse(Text.begin(), Text.end(), Track);
}

llvm::Expected<json> qfx::parseJsonDocument(llvm::StringRef Text,
                                            llvm::StringRef Name,
                                            llvm::StringRef DuplicatePrefix) {
  json Doc;
  std::string DuplicateKey;
  try {
    Doc = parseJsonTrackingDuplicates(Text, DuplicateKey);
  } catch (const json::parse_error &E) {
    return fileError(Name, "not valid JSON (byte " + llvm::Twine(E.byte) +
                               "): " + stripJsonExceptionTag(E.what()));
  } catch (const json::exception &E) {
    return fileError(Name,
                     "not valid JSON: " + stripJsonExceptionTag(E.what()));
  } catch (const std::bad_alloc &) {
    return fileError(Name, "out of memory while parsing JSON");
  }
  if (!DuplicateKey.empty())
    return fileError(Name, DuplicatePrefix + "key '" + DuplicateKey +
                               "' appears twice in one object");
  return Doc;
}
