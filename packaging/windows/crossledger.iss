; Inno Setup script for the Windows installer (Inno Setup 6.3 or later).
;
; Build on Windows, from the repository root, after the PyInstaller one-folder build:
;   .venv\Scripts\python -m PyInstaller --noconfirm --clean packaging\crossledger.spec
;   "%ProgramFiles(x86)%\Inno Setup 6\ISCC.exe" packaging\windows\crossledger.iss
; The installer is written to dist\crossledger-<version>-setup.exe. The version is read from the
; version resource the spec puts into crossledger.exe (app.__version__); /DAppVersion=... overrides it.
; Signing: pass /DSign and define the "signtool" sign tool (packaging/README.md has the command):
;   ISCC /DSign "/Ssigntool=signtool.exe sign /fd SHA256 /tr http://timestamp.digicert.com /td SHA256 /a $f" ...

#define AppName "Crossledger"
#define AppExe "crossledger.exe"
#define BundleDir AddBackslash(SourcePath) + "..\..\dist\crossledger"
#ifndef AppVersion
  #define AppVersion GetStringFileInfo(BundleDir + "\" + AppExe, "ProductVersion")
#endif
#if AppVersion == ""
  #error dist\crossledger\crossledger.exe is missing or has no version: run PyInstaller with packaging\crossledger.spec first
#endif

[Setup]
; AppId identifies the app to Windows across upgrades: never change it.
AppId={{8E150317-AB4A-4223-AA21-4536B9773A51}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=Crossledger
VersionInfoVersion={#AppVersion}
VersionInfoProductName={#AppName}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
; Bookkeepers often have no admin rights: install per user unless they choose all users.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=crossledger-{#AppVersion}-setup
SetupIconFile=..\..\resources\icons\app\crossledger.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; Crossledger may be running in the tray: ask to close it before files are replaced.
CloseApplications=yes
RestartApplications=no
#ifdef Sign
SignTool=signtool
SignedUninstaller=yes
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"; Comment: "Keep your CRM and accounting software in sync"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

; The user's data (%LOCALAPPDATA%\Crossledger: the database, reports) and the sign-ins in the Windows
; Credential Manager are deliberately left in place on uninstall, so a reinstall picks them up again.
