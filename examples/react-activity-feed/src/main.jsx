// Stream's own React components, unchanged, against a Tidings server: the only Tidings-specific
// lines are the two URLs in `options` (the REST API's base and the Faye endpoint).
import { useEffect, useState } from "react";
import ReactDOM from "react-dom";
import {
  Activity,
  ActivityFooter,
  CommentField,
  CommentList,
  Feed,
  FlatFeed,
  NotificationDropdown,
  StatusUpdateForm,
  StreamApp,
  useFeedContext,
} from "react-activity-feed";
import "react-activity-feed/dist/index.css";

const READ = { withRecentReactions: true, withReactionCounts: true, withOwnReactions: true, limit: 10 };

/** The server, API key, app id and user token: from the query string (?server=&api_key=
 * &app_id=&token=) or else from config.json beside the page. */
async function loadConfig() {
  const query = new URLSearchParams(window.location.search);
  if (query.get("server")) {
    return { server: query.get("server"), apiKey: query.get("api_key"), appId: query.get("app_id"), token: query.get("token") };
  }
  const response = await fetch("config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`no ?server=... in the URL and config.json answered ${response.status}`);
  return response.json();
}

/** Where the getstream client inside StreamApp sends its calls: Tidings instead of Stream. */
function tidingsOptions(server) {
  const base = server.replace(/\/+$/, "");
  return { urlOverride: { api: `${base}/api/` }, fayeUrl: `${base}/faye`, timeout: 10000 };
}

function FeedActivity({ activity, feedGroup, userId }) {
  return (
    <Activity
      className="activity"
      activity={activity}
      feedGroup={feedGroup}
      userId={userId}
      Footer={() => (
        <div>
          <ActivityFooter activity={activity} feedGroup={feedGroup} userId={userId} />
          <CommentField activity={activity} placeholder="Write a comment..." />
          <CommentList activityId={activity.id} />
        </div>
      )}
    />
  );
}

/** The status form, refreshing the timeline it sits in once the post is stored. */
function PostForm() {
  const timeline = useFeedContext();
  return (
    <div id="post">
      <StatusUpdateForm feedGroup="user" onSuccess={() => timeline.refresh()} />
    </div>
  );
}

function Errors({ errors }) {
  return errors.length ? <pre id="error">{errors.join("\n")}</pre> : null;
}

function App() {
  const [config, setConfig] = useState(null);
  const [errors, setErrors] = useState([]);
  useEffect(() => {
    loadConfig().then(setConfig, (e) => setErrors([String(e)]));
  }, []);
  const onError = (error, type) => {
    console.error(type, error);
    setErrors((seen) => [...seen, `${type}: ${error?.message || error}`]);
  };
  if (!config) return <Errors errors={errors} />;
  return (
    <StreamApp
      apiKey={config.apiKey}
      appId={config.appId}
      token={config.token}
      options={tidingsOptions(config.server)}
      errorHandler={onError}
      sharedFeeds={[
        { feedGroup: "notification", notify: true, options: { mark_seen: true } },
        { feedGroup: "timeline", notify: true, options: READ },
      ]}
    >
      <div className="page">
        <div id="app">
          <div className="bar">
            <h1>Tidings, with react-activity-feed</h1>
            <div id="notifications">
              <NotificationDropdown notify right />
            </div>
          </div>
          <Feed feedGroup="timeline" notify options={READ}>
            <PostForm />
          </Feed>
          <div id="feed">
            <FlatFeed feedGroup="timeline" notify options={READ} Activity={FeedActivity} />
          </div>
        </div>
        <Errors errors={errors} />
      </div>
    </StreamApp>
  );
}

ReactDOM.render(<App />, document.getElementById("root"));
