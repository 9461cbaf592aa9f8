// @ts-check
// Vietnamese by default, English on request; the choice is kept in localStorage.
// Elements carry data-i18n="key" (text), data-i18n-ph="key" (placeholder) or
// data-i18n-title="key" (tooltip); apply() fills them in.

/** @typedef {'vi'|'en'} Lang */

const STORAGE_KEY = 'ops.lang';

/** @type {Record<Lang, Record<string, string>>} */
const dict = {
  vi: {
    'app.title': 'Trung tâm điều hành',
    'lang.switch': 'English',
    'common.loading': 'Đang tải…',
    'common.save': 'Lưu',
    'common.cancel': 'Hủy',
    'common.close': 'Đóng',
    'common.send': 'Gửi',
    'common.logout': 'Đăng xuất',
    'common.error': 'Lỗi: {msg}',
    'common.all': 'Tất cả',
    'common.none': 'Không có',
    'common.yes': 'Có',
    'common.no': 'Không',

    'conn.connecting': 'Đang kết nối…',
    'conn.open': 'Đã kết nối',
    'conn.reconnecting': 'Mất kết nối, thử lại sau {s} giây…',
    'conn.closed': 'Đã ngắt kết nối',
    'conn.replaced': 'Đã mở ở nơi khác; phiên này đã dừng',
    'quality.good': 'Tốt',
    'quality.fair': 'Trung bình',
    'quality.poor': 'Kém',
    'quality.none': '—',
    'quality.detail': 'RTT {rtt} ms · mất gói {loss}% · gửi {kbps} kbps',

    'login.title': 'Đăng nhập cán bộ',
    'login.username': 'Tên đăng nhập',
    'login.password': 'Mật khẩu',
    'login.submit': 'Đăng nhập',
    'login.bad': 'Sai tên đăng nhập hoặc mật khẩu',
    'login.limited': 'Đăng nhập sai quá nhiều lần; hãy chờ rồi thử lại',

    'join.title': 'Điểm cầu',
    'join.linking': 'Đang xác thực đường dẫn…',
    'join.badlink': 'Đường dẫn tham gia không hợp lệ hoặc đã được thay. Hãy xin đường dẫn mới.',
    'join.nolink': 'Hãy mở trang này bằng đường dẫn tham gia của điểm cầu.',
    'join.devicecheck': 'Kiểm tra thiết bị',
    'join.camera': 'Máy quay',
    'join.mic': 'Micrô',
    'join.level': 'Mức âm thanh',
    'join.join': 'Vào phiên họp',
    'join.nodevice': 'Không mở được máy quay/micrô: {msg}. Bạn vẫn có thể vào để xem và nghe.',
    'join.program': 'Chương trình (Ban chỉ đạo tỉnh)',
    'join.floor': 'Đang phát biểu',
    'join.nofloor': 'Chưa có điểm cầu phát biểu',
    'join.noprogram': 'Chưa có tín hiệu từ phòng chỉ huy',
    'join.self': 'Hình của tôi',
    'join.raise': 'Giơ tay',
    'join.lower': 'Hạ tay',
    'join.handup': 'Đang giơ tay (thứ {n})',
    'join.muted': 'Micrô đang tắt',
    'join.live': 'Micrô đang bật',
    'join.unmuteask': 'Phòng chỉ huy đề nghị bật micrô',
    'join.unmute': 'Bật micrô',
    'join.youhavefloor': 'Bạn đang được phát biểu',
    'join.privateline': 'Đang nói riêng với phòng chỉ huy',
    'join.inbox': 'Chỉ đạo',
    'join.ack': 'Đã nhận',
    'join.acked': 'Đã nhận lúc {t}',
    'join.noinbox': 'Chưa có chỉ đạo',
    'join.report': 'Báo cáo sự việc',
    'join.retrying': 'Chưa gửi được, sẽ tự gửi lại khi có kết nối',
    'join.category': 'Loại',
    'join.severity': 'Mức độ',
    'join.titlefield': 'Tiêu đề',
    'join.text': 'Nội dung',
    'join.submitreport': 'Gửi báo cáo',
    'join.outbox': 'Chờ gửi: {n}',
    'join.sent': 'Đã gửi báo cáo',
    'join.failed': 'Máy chủ từ chối: {msg}',
    'join.discard': 'Bỏ',
    'join.myreports': 'Báo cáo đã gửi',
    'join.degraded': 'Máy chủ báo đường truyền của điểm cầu đang suy giảm',
    'join.degraded.no_media': 'Máy chủ không nhận được hình và tiếng từ điểm cầu này',
    'join.notsending': 'Không gửi được {kinds} lên máy chủ — kiểm tra mạng, máy quay và micrô',
    'join.kind.audio': 'tiếng',
    'join.kind.video': 'hình',

    'cat.security_order': 'An ninh trật tự',
    'cat.health_covid': 'Y tế / COVID-19',
    'cat.complaint': 'Khiếu nại',
    'cat.logistics': 'Hậu cần',
    'cat.communications': 'Thông tin liên lạc',
    'cat.other': 'Khác',
    'sev.info': 'Thông tin',
    'sev.low': 'Thấp',
    'sev.high': 'Cao',
    'sev.critical': 'Khẩn cấp',
    'status.open': 'Mới',
    'status.acknowledged': 'Đã tiếp nhận',
    'status.in_progress': 'Đang xử lý',
    'status.resolved': 'Đã giải quyết',
    'status.closed': 'Đã đóng',

    'presence.offline': 'Ngoại tuyến',
    'presence.joined': 'Đang vào',
    'presence.connected': 'Trực tuyến',
    'presence.degraded': 'Chập chờn',

    'console.title': 'Bàn điều hành',
    'console.publish': 'Phát hình phòng chỉ huy',
    'console.screen': 'Chia sẻ màn hình',
    'console.stopscreen': 'Dừng chia sẻ',
    'console.wall': 'Màn hình giám sát',
    'console.grid': 'Lưới',
    'console.page': 'Trang {p}/{n}',
    'console.prev': '‹ Trước',
    'console.next': 'Sau ›',
    'console.online': '{n}/{total} trực tuyến',
    'console.health': 'Tình trạng kết nối',
    'console.hands': 'Giơ tay',
    'console.nohands': 'Chưa có ai giơ tay',
    'console.givefloor': 'Cho phát biểu',
    'console.revokefloor': 'Thu hồi phát biểu',
    'console.floor': 'Phát biểu: {name}',
    'console.nofloor': 'Chưa có ai phát biểu',
    'console.mute': 'Tắt micrô',
    'console.muteall': 'Tắt tất cả micrô',
    'console.askunmute': 'Đề nghị bật micrô',
    'console.private': 'Nói riêng',
    'console.endprivate': 'Kết thúc nói riêng',
    'console.incidents': 'Sự việc mới',
    'console.unacked': 'Chỉ đạo chưa nhận',
    'console.issue': 'Ra chỉ đạo',
    'console.session': 'Phiên: {title}',
    'console.nosession': 'Chưa có phiên họp đang diễn ra',
    'console.startsession': 'Bắt đầu phiên',
    'console.endsession': 'Kết thúc phiên',
    'console.selected': 'Đang chọn: {name}',
    'console.rollcall': 'Điểm danh',
    'console.stoprollcall': 'Dừng điểm danh',

    'desk.title': 'Bàn trực',
    'desk.incidents': 'Sự việc',
    'desk.search': 'Tìm kiếm (không cần dấu)',
    'desk.filter.status': 'Trạng thái',
    'desk.filter.category': 'Loại',
    'desk.filter.severity': 'Mức độ',
    'desk.new': 'Thêm sự việc',
    'desk.edit': 'Sửa sự việc',
    'desk.endpoint': 'Điểm cầu',
    'desk.time': 'Thời điểm',
    'desk.status': 'Trạng thái',
    'desk.assignee': 'Người xử lý',
    'desk.timeline': 'Diễn biến',
    'desk.comment': 'Ghi chú',
    'desk.addcomment': 'Thêm ghi chú',
    'desk.conflict': 'Sự việc này vừa được người khác sửa. Bản của bạn chưa được lưu.',
    'desk.theirs': 'Bản trên máy chủ',
    'desk.mine': 'Bản của bạn',
    'desk.keepmine': 'Ghi đè bằng bản của tôi',
    'desk.takeTheirs': 'Dùng bản trên máy chủ',
    'desk.directives': 'Chỉ đạo',
    'desk.issue': 'Ra chỉ đạo',
    'desk.dtext': 'Nội dung chỉ đạo',
    'desk.targets': 'Gửi tới',
    'desk.target.all': 'Tất cả điểm cầu',
    'desk.target.district': 'Một huyện (và các xã)',
    'desk.target.list': 'Danh sách điểm cầu',
    'desk.due': 'Hạn',
    'desk.matrix': 'Tình hình nhận chỉ đạo',
    'desk.notacked': 'Chưa nhận: {n}/{total}',
    'desk.since': 'đã {m} phút',
    'desk.ackedby': 'Đã nhận ({by})',
    'desk.report': 'Báo cáo phiên',
    'desk.live': 'Cập nhật trực tiếp',
    'desk.stale': 'Mất luồng cập nhật, đang nối lại…',
    'desk.count': '{n} sự việc',
    'desk.readonly': 'Chỉ xem',

    'turnout.title': 'Tỷ lệ cử tri đi bầu',
    'turnout.voters': 'cử tri',
    'turnout.at': 'Số liệu lúc {t}',
    'turnout.communesComplete': 'Xã hoàn thành: {n}/{total}',
    'turnout.staleCount': 'Chậm báo cáo: {n} xã',
    'turnout.doneAt': 'Xong lúc {t}',
    'turnout.units': 'Xong {n}/{total} xã',
    'turnout.lastReport': 'Báo cáo lúc {t}',
    'turnout.noreport': 'Chưa báo cáo',
    'turnout.stale': 'Chậm báo cáo',
    'turnout.belowHalf': 'Chưa quá nửa',
    'turnout.legend.complete': 'Đã hoàn thành',
    'turnout.legend.below': 'Chưa quá một nửa cử tri (≤ 50%)',
    'turnout.legend.stale': 'Quá hạn chưa báo cáo',
    'turnout.curve': 'Diễn biến toàn tỉnh',
    'turnout.curveOf': 'Diễn biến của {name}',
    'turnout.nocurve': 'Chưa có phiên nên chưa có diễn biến',
    'turnout.nosession': 'Chưa có phiên: đây là số cử tri đã đăng ký',
    'turnout.districts': 'Huyện, thị xã, thành phố (theo tỷ lệ)',
    'turnout.pickDistrict': 'Bấm vào một huyện để xem các xã.',
    'turnout.communesOf': 'Các xã của {name}',
    'turnout.error': 'Không tải được số liệu cử tri: {msg}',
    'turnout.my': 'Số cử tri đi bầu',
    'turnout.voted': 'Số cử tri đã bỏ phiếu (cộng dồn)',
    'turnout.complete': 'Đơn vị đã kết thúc bỏ phiếu',
    'turnout.send': 'Gửi số liệu',
    'turnout.lastAccepted': 'Báo cáo được nhận gần nhất: {voted} cử tri, lúc {t}',
    'turnout.noneAccepted': 'Chưa có báo cáo nào được nhận',
    'turnout.lower': 'Số {voted} thấp hơn số đã báo ({last}). Số cộng dồn không được giảm; máy chủ sẽ từ chối nếu không phải là đính chính của cán bộ trực. Vẫn gửi?',
    'turnout.lower.send': 'Vẫn gửi',
    'turnout.invalid': 'Hãy nhập một số nguyên từ 0 trở lên',
    'turnout.refused': 'Không được nhận: {msg}',
    'turnout.refused.decreasing': 'thấp hơn số đã báo; hãy liên hệ cán bộ trực để đính chính',
    'turnout.refused.over': 'vượt số cử tri đã đăng ký',
    'turnout.sent': 'Đã gửi số liệu cử tri',
  },
  en: {
    'app.title': 'Operations center',
    'lang.switch': 'Tiếng Việt',
    'common.loading': 'Loading…',
    'common.save': 'Save',
    'common.cancel': 'Cancel',
    'common.close': 'Close',
    'common.send': 'Send',
    'common.logout': 'Log out',
    'common.error': 'Error: {msg}',
    'common.all': 'All',
    'common.none': 'None',
    'common.yes': 'Yes',
    'common.no': 'No',

    'conn.connecting': 'Connecting…',
    'conn.open': 'Connected',
    'conn.reconnecting': 'Connection lost, retrying in {s} s…',
    'conn.closed': 'Disconnected',
    'conn.replaced': 'Opened elsewhere; this tab has stopped',
    'quality.good': 'Good',
    'quality.fair': 'Fair',
    'quality.poor': 'Poor',
    'quality.none': '—',
    'quality.detail': 'RTT {rtt} ms · loss {loss}% · sending {kbps} kbps',

    'login.title': 'Staff login',
    'login.username': 'Username',
    'login.password': 'Password',
    'login.submit': 'Log in',
    'login.bad': 'Wrong username or password',
    'login.limited': 'Too many failed logins; wait and try again',

    'join.title': 'Endpoint',
    'join.linking': 'Checking the join link…',
    'join.badlink': 'This join link is not valid or has been replaced. Ask for a new one.',
    'join.nolink': 'Open this page with the endpoint’s join link.',
    'join.devicecheck': 'Device check',
    'join.camera': 'Camera',
    'join.mic': 'Microphone',
    'join.level': 'Sound level',
    'join.join': 'Join the session',
    'join.nodevice': 'Cannot open camera/microphone: {msg}. You can still join to watch and listen.',
    'join.program': 'Program (provincial command room)',
    'join.floor': 'Speaking',
    'join.nofloor': 'Nobody has the floor',
    'join.noprogram': 'No signal from the command room yet',
    'join.self': 'My camera',
    'join.raise': 'Raise hand',
    'join.lower': 'Lower hand',
    'join.handup': 'Hand raised (#{n})',
    'join.muted': 'Microphone muted',
    'join.live': 'Microphone live',
    'join.unmuteask': 'The command room asks you to unmute',
    'join.unmute': 'Unmute',
    'join.youhavefloor': 'You have the floor',
    'join.privateline': 'Private line with the command room',
    'join.inbox': 'Directives',
    'join.ack': 'Acknowledge',
    'join.acked': 'Acknowledged at {t}',
    'join.noinbox': 'No directives yet',
    'join.report': 'Report an incident',
    'join.retrying': 'Not sent yet; it will be resent automatically',
    'join.category': 'Category',
    'join.severity': 'Severity',
    'join.titlefield': 'Title',
    'join.text': 'Details',
    'join.submitreport': 'Send report',
    'join.outbox': 'Waiting to send: {n}',
    'join.sent': 'Report sent',
    'join.failed': 'Refused by the server: {msg}',
    'join.discard': 'Discard',
    'join.myreports': 'Sent reports',
    'join.degraded': 'The server reports this endpoint’s link as degraded',
    'join.degraded.no_media': 'The server is not receiving picture or sound from this endpoint',
    'join.notsending': 'Not sending {kinds} to the server — check the network, camera and microphone',
    'join.kind.audio': 'sound',
    'join.kind.video': 'picture',

    'cat.security_order': 'Security and order',
    'cat.health_covid': 'Health / COVID-19',
    'cat.complaint': 'Complaint',
    'cat.logistics': 'Logistics',
    'cat.communications': 'Communications',
    'cat.other': 'Other',
    'sev.info': 'Info',
    'sev.low': 'Low',
    'sev.high': 'High',
    'sev.critical': 'Critical',
    'status.open': 'Open',
    'status.acknowledged': 'Acknowledged',
    'status.in_progress': 'In progress',
    'status.resolved': 'Resolved',
    'status.closed': 'Closed',

    'presence.offline': 'Offline',
    'presence.joined': 'Joining',
    'presence.connected': 'Online',
    'presence.degraded': 'Degraded',

    'console.title': 'Command console',
    'console.publish': 'Broadcast command room camera',
    'console.screen': 'Share screen',
    'console.stopscreen': 'Stop sharing',
    'console.wall': 'Video wall',
    'console.grid': 'Grid',
    'console.page': 'Page {p}/{n}',
    'console.prev': '‹ Prev',
    'console.next': 'Next ›',
    'console.online': '{n}/{total} online',
    'console.health': 'Connection health',
    'console.hands': 'Raised hands',
    'console.nohands': 'No raised hands',
    'console.givefloor': 'Give floor',
    'console.revokefloor': 'Revoke floor',
    'console.floor': 'Floor: {name}',
    'console.nofloor': 'Nobody has the floor',
    'console.mute': 'Mute',
    'console.muteall': 'Mute all',
    'console.askunmute': 'Ask to unmute',
    'console.private': 'Private line',
    'console.endprivate': 'End private line',
    'console.incidents': 'Latest incidents',
    'console.unacked': 'Unacknowledged directives',
    'console.issue': 'Issue directive',
    'console.session': 'Session: {title}',
    'console.nosession': 'No session in progress',
    'console.startsession': 'Start session',
    'console.endsession': 'End session',
    'console.selected': 'Selected: {name}',
    'console.rollcall': 'Roll call',
    'console.stoprollcall': 'Stop roll call',

    'desk.title': 'Duty desk',
    'desk.incidents': 'Incidents',
    'desk.search': 'Search (accents optional)',
    'desk.filter.status': 'Status',
    'desk.filter.category': 'Category',
    'desk.filter.severity': 'Severity',
    'desk.new': 'New incident',
    'desk.edit': 'Edit incident',
    'desk.endpoint': 'Endpoint',
    'desk.time': 'Occurred',
    'desk.status': 'Status',
    'desk.assignee': 'Assignee',
    'desk.timeline': 'Timeline',
    'desk.comment': 'Note',
    'desk.addcomment': 'Add note',
    'desk.conflict': 'Someone else just changed this incident. Your version was not saved.',
    'desk.theirs': 'Server version',
    'desk.mine': 'Your version',
    'desk.keepmine': 'Overwrite with mine',
    'desk.takeTheirs': 'Use the server version',
    'desk.directives': 'Directives',
    'desk.issue': 'Issue directive',
    'desk.dtext': 'Directive text',
    'desk.targets': 'To',
    'desk.target.all': 'All endpoints',
    'desk.target.district': 'One district (and its communes)',
    'desk.target.list': 'A list of endpoints',
    'desk.due': 'Due',
    'desk.matrix': 'Acknowledgements',
    'desk.notacked': 'Not acknowledged: {n}/{total}',
    'desk.since': '{m} min ago',
    'desk.ackedby': 'Acknowledged ({by})',
    'desk.report': 'Session report',
    'desk.live': 'Live',
    'desk.stale': 'Live updates lost, reconnecting…',
    'desk.count': '{n} incidents',
    'desk.readonly': 'Read only',

    'turnout.title': 'Voter turnout',
    'turnout.voters': 'voters',
    'turnout.at': 'Figures as of {t}',
    'turnout.communesComplete': 'Communes complete: {n}/{total}',
    'turnout.staleCount': 'Late reporting: {n} communes',
    'turnout.doneAt': 'Done at {t}',
    'turnout.units': '{n}/{total} communes done',
    'turnout.lastReport': 'Reported at {t}',
    'turnout.noreport': 'No report yet',
    'turnout.stale': 'Late',
    'turnout.belowHalf': 'Half or less',
    'turnout.legend.complete': 'Complete',
    'turnout.legend.below': 'Half of the voters or fewer (≤ 50%)',
    'turnout.legend.stale': 'No report within the interval',
    'turnout.curve': 'Province curve',
    'turnout.curveOf': 'Curve of {name}',
    'turnout.nocurve': 'No session yet, so no curve',
    'turnout.nosession': 'No session: these are the registered voters',
    'turnout.districts': 'Districts (by percent)',
    'turnout.pickDistrict': 'Click a district to see its communes.',
    'turnout.communesOf': 'Communes of {name}',
    'turnout.error': 'Cannot load the turnout figures: {msg}',
    'turnout.my': 'Voter turnout',
    'turnout.voted': 'Voters who have voted (cumulative)',
    'turnout.complete': 'Voting has finished here',
    'turnout.send': 'Send figure',
    'turnout.lastAccepted': 'Last accepted report: {voted} voters, at {t}',
    'turnout.noneAccepted': 'No report accepted yet',
    'turnout.lower': '{voted} is lower than the figure already reported ({last}). A cumulative figure does not go down; the server refuses it unless duty staff record a correction. Send anyway?',
    'turnout.lower.send': 'Send anyway',
    'turnout.invalid': 'Enter a whole number, 0 or more',
    'turnout.refused': 'Not accepted: {msg}',
    'turnout.refused.decreasing': 'lower than the figure already reported; ask the duty desk for a correction',
    'turnout.refused.over': 'above the registered voters',
    'turnout.sent': 'Turnout figure sent',
  },
};

/**
 * Adds a module's strings to the dictionary, so that a page or feature keeps its
 * texts beside its code instead of in this shared file. Later keys win.
 * @param {Record<string, string>} vi
 * @param {Record<string, string>} en
 */
export function addStrings(vi, en) {
  Object.assign(dict.vi, vi);
  Object.assign(dict.en, en);
}

/** @returns {Lang} */
export function lang() {
  const v = localStorage.getItem(STORAGE_KEY);
  return v === 'en' ? 'en' : 'vi';
}

/**
 * Translates key, filling {name} placeholders from vars. Unknown keys show as is.
 * @param {string} key
 * @param {Record<string, string|number>} [vars]
 * @returns {string}
 */
export function t(key, vars) {
  const s = dict[lang()][key] ?? dict.vi[key] ?? key;
  if (!vars) return s;
  return s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

/**
 * Fills every data-i18n* element under root.
 * @param {ParentNode} [root]
 */
export function apply(root = document) {
  document.documentElement.lang = lang();
  for (const el of root.querySelectorAll('[data-i18n]')) {
    el.textContent = t(/** @type {string} */ (el.getAttribute('data-i18n')));
  }
  for (const el of root.querySelectorAll('[data-i18n-ph]')) {
    el.setAttribute('placeholder', t(/** @type {string} */ (el.getAttribute('data-i18n-ph'))));
  }
  for (const el of root.querySelectorAll('[data-i18n-title]')) {
    el.setAttribute('title', t(/** @type {string} */ (el.getAttribute('data-i18n-title'))));
  }
}

/**
 * Wires a language switch button: it shows the other language and, when clicked,
 * stores the choice and re-renders through onChange.
 * @param {HTMLElement|null} button
 * @param {() => void} [onChange]
 */
export function wireSwitch(button, onChange) {
  if (!button) return;
  button.textContent = t('lang.switch');
  button.addEventListener('click', () => {
    localStorage.setItem(STORAGE_KEY, lang() === 'vi' ? 'en' : 'vi');
    apply();
    button.textContent = t('lang.switch');
    if (onChange) onChange();
  });
}

/**
 * Formats a time for people, in the page's language.
 * @param {string|number|Date|null|undefined} v
 * @param {boolean} [withDate]
 */
export function fmtTime(v, withDate = false) {
  if (!v) return '';
  const d = new Date(v);
  const loc = lang() === 'vi' ? 'vi-VN' : 'en-GB';
  return withDate
    ? d.toLocaleString(loc, { hour12: false })
    : d.toLocaleTimeString(loc, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}
